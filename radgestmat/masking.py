"""Addresses as they may appear in logs: enough to recognise, not enough to reuse."""

from __future__ import annotations


def mask_phone(number: str) -> str:
    """``+33612345678`` → ``+33******78``."""
    number = number.removeprefix("whatsapp:")
    if len(number) <= 5:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 5) + number[-2:]


def mask_email(address: str) -> str:
    """``camille@example.org`` → ``c***@example.org``."""
    local, at, domain = address.partition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_address(address: str) -> str:
    if not address:
        return ""
    return mask_email(address) if "@" in address else mask_phone(address)
