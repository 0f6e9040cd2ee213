"""Loan lifecycle signals, sent once after the change is committed (never on rollback).

Receivers get ``attribution`` (the saved Attribution) and ``now``; ``attribution_extended``
also gets ``previous_due``; ``extension_refused`` also gets ``extension_request``.

`assets.services` sends them itself, with the ``now`` it was given. A loan saved any other
way — `Attribution.objects.create(...)` in a shell or an import script, or setting
``date_retour_effective`` and calling ``save()`` (the spec's Phase 6) — gets the same
`attribution_created` / `attribution_returned` from the model signals below, after commit,
with the commit's time. Fixtures loaded raw (`loaddata`) send nothing. Code that sends the
signals itself wraps its saves in `sent_by_caller()`, so a loan is never announced twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.dispatch import Signal, receiver
from django.utils import timezone

attribution_created = Signal()
attribution_returned = Signal()
attribution_extended = Signal()
# Staff refused a borrower's extension request (a granted one is an `attribution_extended`).
extension_refused = Signal()

_caller_sends = ContextVar("loan_signals_sent_by_caller", default=False)


@contextmanager
def sent_by_caller() -> Iterator[None]:
    """Saves of loans inside this block send no lifecycle signal: the caller sends them (the services)."""
    token = _caller_sends.set(True)
    try:
        yield
    finally:
        _caller_sends.reset(token)


def _announce(signal: Signal, attribution) -> None:
    transaction.on_commit(lambda: signal.send(sender=type(attribution), attribution=attribution, now=timezone.now()))


@receiver(pre_save, sender="assets.Attribution", dispatch_uid="loan_note_return")
def note_return(sender, instance, raw=False, update_fields=None, **kwargs):
    """Remember whether this save is the one that returns the loan (its return date goes from empty to set)."""
    instance._returning = False
    if raw or _caller_sends.get() or instance._state.adding or instance.date_retour_effective is None:
        return
    if update_fields is not None and "date_retour_effective" not in update_fields:
        return
    instance._returning = sender.objects.filter(pk=instance.pk, date_retour_effective__isnull=True).exists()


@receiver(post_save, sender="assets.Attribution", dispatch_uid="loan_announce_saved")
def announce_saved(sender, instance, created, raw=False, **kwargs):
    if raw or _caller_sends.get():
        return
    if created:
        _announce(attribution_created, instance)
        if instance.date_retour_effective is not None:
            _announce(attribution_returned, instance)
    elif getattr(instance, "_returning", False):
        _announce(attribution_returned, instance)
