"""Lend, return and extend: the only ways a loan changes.

Each function validates, saves atomically and sends its signal after commit.
Bad input raises ``ValidationError`` keyed by field, before anything is saved.
Views, the admin and commands all call these, so the rules hold everywhere.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from .models import Attribution, Client, Extension, Materiel
from .signals import attribution_created, attribution_extended, attribution_returned, sent_by_caller


def validate_lend(*, materiel: Materiel, client: Client, start: datetime, due: datetime) -> None:
    errors: dict[str, list[str]] = {}
    if materiel.state == Materiel.State.OUT_OF_SERVICE:
        errors.setdefault("materiel", []).append(
            _("%(code)s is out of service and cannot be lent.") % {"code": materiel.code}
        )
    elif Attribution.objects.open().filter(materiel=materiel).exists():
        errors.setdefault("materiel", []).append(
            _("%(code)s is already out on another loan.") % {"code": materiel.code}
        )
    if not client.has_contact:
        errors.setdefault("client", []).append(
            _("%(name)s has no email address or phone number, so they could not be notified. Add one first.")
            % {"name": client.name}
        )
    if due <= start:
        errors.setdefault("date_retour_prevue", []).append(_("The due date must be after the start of the loan."))
    if errors:
        raise ValidationError(errors)


def lend(
    *,
    materiel: Materiel,
    client: Client,
    due: datetime,
    now: datetime,
    start: datetime | None = None,
    by: User | AnonymousUser | None = None,
    notes: str = "",
) -> Attribution:
    """Record that ``materiel`` leaves with ``client`` from ``start`` (default ``now``) until ``due``."""
    with transaction.atomic():
        attribution = _lend(materiel=materiel, client=client, due=due, now=now, start=start, by=by, notes=notes)
        transaction.on_commit(lambda: attribution_created.send(sender=Attribution, attribution=attribution, now=now))
    return attribution


def _lend(
    *,
    materiel: Materiel,
    client: Client,
    due: datetime,
    now: datetime,
    start: datetime | None,
    by: User | AnonymousUser | None,
    notes: str,
) -> Attribution:
    start = start or now
    with transaction.atomic():
        # Lock the material row so two desks lending the same item queue up here.
        materiel = Materiel.objects.select_for_update().get(pk=materiel.pk)
        validate_lend(materiel=materiel, client=client, start=start, due=due)
        try:
            with transaction.atomic(), sent_by_caller():
                attribution = Attribution.objects.create(
                    materiel=materiel,
                    client=client,
                    created_by=by if isinstance(by, User) else None,  # an AnonymousUser is nobody
                    date_debut=start,
                    date_retour_prevue=due,
                    notes=notes,
                )
        except IntegrityError:
            raise ValidationError(
                {"materiel": _("%(code)s is already out on another loan.") % {"code": materiel.code}}
            ) from None
        Materiel.objects.filter(pk=materiel.pk).update(state=Materiel.State.LENT)
    return attribution


def lend_several(
    *,
    materiels: list[Materiel],
    client: Client,
    due: datetime,
    now: datetime,
    start: datetime | None = None,
    by: User | AnonymousUser | None = None,
    notes: str = "",
) -> list[Attribution]:
    """Lend several items to one borrower at once: all or none, each its own loan.

    Their confirmations are planned together once everything is saved, so the borrower
    gets one message listing the items (the notifications' digests), not one per item.
    """
    with transaction.atomic():
        loans = [
            _lend(materiel=materiel, client=client, due=due, now=now, start=start, by=by, notes=notes)
            for materiel in materiels
        ]
        transaction.on_commit(lambda: _announce_together(loans, now=now))
    return loans


def _announce_together(loans: list[Attribution], *, now: datetime) -> None:
    # One transaction around the receivers: what they plan is published once all of it is saved.
    with transaction.atomic():
        for attribution in loans:
            attribution_created.send(sender=Attribution, attribution=attribution, now=now)


# How far ahead of the server's clock a typed return time may be: a desk clock runs a little fast,
# a return "in two days" is a typing mistake that would stop every reminder.
RETURN_CLOCK_TOLERANCE = timedelta(minutes=5)


def validate_return(attribution: Attribution, *, when: datetime, now: datetime) -> None:
    if not attribution.is_open:
        raise ValidationError(_("This loan was already returned."), code="already_returned")
    if when > now + RETURN_CLOCK_TOLERANCE:
        raise ValidationError({"date_retour_effective": _("The return cannot be in the future.")}, code="in_the_future")
    if when < attribution.date_debut:
        raise ValidationError(
            {"date_retour_effective": _("The return cannot be before the start of the loan.")}, code="before_start"
        )


def record_return(
    attribution: Attribution,
    *,
    now: datetime,
    returned_at: datetime | None = None,
    by: User | AnonymousUser | None = None,
) -> Attribution:
    """Record that the loan's material came back at ``returned_at`` (default ``now``)."""
    returned_at = returned_at or now
    with transaction.atomic():
        locked = Attribution.objects.select_for_update().select_related("materiel", "client").get(pk=attribution.pk)
        validate_return(locked, when=returned_at, now=now)
        locked.date_retour_effective = returned_at
        with sent_by_caller():
            locked.save(update_fields=["date_retour_effective"])
        Materiel.objects.filter(pk=locked.materiel_id, state=Materiel.State.LENT).update(state=Materiel.State.AVAILABLE)
        transaction.on_commit(lambda: attribution_returned.send(sender=Attribution, attribution=locked, now=now))
    attribution.refresh_from_db()
    return locked


def validate_extend(attribution: Attribution, *, new_due: datetime) -> None:
    if not attribution.is_open:
        raise ValidationError(_("A returned loan cannot be extended."), code="already_returned")
    if new_due <= attribution.date_debut:
        raise ValidationError({"date_retour_prevue": _("The due date must be after the start of the loan.")})
    if new_due == attribution.date_retour_prevue:
        raise ValidationError({"date_retour_prevue": _("The new due date is the same as the current one.")})


def extend(
    attribution: Attribution, *, new_due: datetime, now: datetime, by: User | AnonymousUser | None = None
) -> Attribution:
    """Move the loan's due date (later or earlier); its duration class follows."""
    with transaction.atomic():
        locked = Attribution.objects.select_for_update().select_related("materiel", "client").get(pk=attribution.pk)
        validate_extend(locked, new_due=new_due)
        previous_due = locked.date_retour_prevue
        locked.date_retour_prevue = new_due
        locked.save(update_fields=["date_retour_prevue"])
        Extension.objects.create(
            attribution=locked,
            previous_due=previous_due,
            new_due=new_due,
            created_by=by if isinstance(by, User) else None,
            created_at=now,
        )
        transaction.on_commit(
            lambda: attribution_extended.send(
                sender=Attribution, attribution=locked, now=now, previous_due=previous_due
            )
        )
    attribution.refresh_from_db()
    return locked
