"""Which variant of an experiment a loan gets: a pure function of the two ids (no model, no query).

`sha256("experiment:<id>:loan:<loan id>")` read as a number in [0, 1), placed in the variants'
cumulative shares. Every row of a loan — retries, fallbacks, several reminders of one type —
gets the same variant, in any process, without anything stored first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol


class Shared(Protocol):
    share: int


def bucket(experiment_id: int, attribution_id: int) -> float:
    """A number in [0, 1) fixed by the two ids (not Python's `hash`, which differs between processes)."""
    digest = hashlib.sha256(f"experiment:{experiment_id}:loan:{attribution_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(variants: Sequence[Shared], experiment_id: int, attribution_id: int):
    """The variant of this loan: its bucket placed in the variants' cumulative shares (in the order given)."""
    total = sum(variant.share for variant in variants)
    point = bucket(experiment_id, attribution_id) * total
    for variant in variants:
        point -= variant.share
        if point < 0:
            return variant
    return variants[-1]
