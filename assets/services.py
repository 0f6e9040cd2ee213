"""Lend, return and extend: the only ways a loan changes.

Each function validates, saves atomically and sends its signal after commit.
Bad input raises ``ValidationError`` keyed by field, before anything is saved.
Views, the admin and commands all call these, so the rules hold everywhere.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .models import Attribution, Client, ExtensionRequest, LoanEvent, Materiel, elapsed, extensions_of
from .signals import (
    attribution_created,
    attribution_extended,
    attribution_returned,
    extension_refused,
    sent_by_caller,
)
from .validators import validate_single_line


def person(by: User | AnonymousUser | None) -> User | None:
    """Who made a change, for the loan's history: an AnonymousUser is nobody."""
    return by if isinstance(by, User) else None


def open_loan_of(materiel: Materiel) -> Attribution | None:
    return Attribution.objects.open().filter(materiel=materiel).select_related("client").first()


def already_out_message(loan: Attribution) -> str:
    return _("%(code)s is already out with %(client)s (due %(due)s).") % {
        "code": loan.materiel.code,
        "client": loan.client.name,
        "due": date_format(timezone.localtime(loan.date_retour_prevue), "SHORT_DATETIME_FORMAT"),
    }


def validate_lend(*, materiel: Materiel | None, client: Client | None, start: datetime, due: datetime | None) -> None:
    """Every problem of this loan at once, keyed by field; a part that is None (not understood) is not checked."""
    errors: dict[str, list[str]] = {}
    if materiel is not None:
        if materiel.state == Materiel.State.OUT_OF_SERVICE:
            errors.setdefault("materiel", []).append(
                _("%(code)s is out of service and cannot be lent.") % {"code": materiel.code}
            )
        elif (busy := open_loan_of(materiel)) is not None:
            busy.materiel = materiel
            errors.setdefault("materiel", []).append(already_out_message(busy))
    if client is not None and not client.has_contact:
        errors.setdefault("client", []).append(
            _("%(name)s has no email address or phone number, so they could not be notified. Add one first.")
            % {"name": client.name}
        )
    if due is not None and due <= start:
        errors.setdefault("date_retour_prevue", []).append(_("The due date must be after the start of the loan."))
    if errors:
        raise ValidationError(errors)


def _create_loan(
    materiel: Materiel, *, client: Client, start: datetime, due: datetime, now: datetime, by, notes: str
) -> Attribution:
    """Save one loan of a locked, validated material (the caller announces it)."""
    try:
        with transaction.atomic(), sent_by_caller():
            attribution = Attribution.objects.create(
                materiel=materiel,
                client=client,
                created_by=person(by),
                date_debut=start,
                date_retour_prevue=due,
                notes=notes,
            )
    except IntegrityError:
        raise ValidationError(
            {"materiel": _("%(code)s is already out on another loan.") % {"code": materiel.code}}
        ) from None
    Materiel.objects.filter(pk=materiel.pk).update(state=Materiel.State.LENT)
    LoanEvent.objects.create(
        attribution=attribution, kind=LoanEvent.Kind.LENT, at=now, by=person(by), new_due=due, note=notes
    )
    return attribution


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
        [attribution] = _lend(materiels=[materiel], client=client, due=due, now=now, start=start, by=by, notes=notes)
        transaction.on_commit(lambda: attribution_created.send(sender=Attribution, attribution=attribution, now=now))
    return attribution


def _lend(
    *,
    materiels: list[Materiel],
    client: Client,
    due: datetime,
    now: datetime,
    start: datetime | None,
    by: User | AnonymousUser | None,
    notes: str,
) -> list[Attribution]:
    """Lock, check (every problem of every item at once, under "materiel"), then save each loan."""
    start = start or now
    with transaction.atomic():
        # Lock the material rows (in id order, so two desks never deadlock) so two desks lending one item queue up.
        locked = {
            m.pk: m
            for m in Materiel.objects.select_for_update().filter(pk__in=[m.pk for m in materiels]).order_by("pk")
        }
        errors: dict[str, list[str]] = {}
        for position, materiel in enumerate(materiels):
            try:
                validate_lend(
                    materiel=locked[materiel.pk],
                    client=client if position == 0 else None,
                    start=start,
                    due=due if position == 0 else None,
                )
            except ValidationError as exc:
                for field, messages in exc.message_dict.items():
                    errors.setdefault(field, []).extend(messages)
        if errors:
            raise ValidationError(errors)
        return [
            _create_loan(locked[m.pk], client=client, start=start, due=due, now=now, by=by, notes=notes)
            for m in materiels
        ]


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
    """Lend several items to one borrower at once, all due at the same time: all or none, each its own loan.

    Every item's problem is reported together. Their confirmations are planned together once
    everything is saved, so the borrower gets one message listing the items (the notifications'
    digests), not one per item.
    """
    with transaction.atomic():
        loans = _lend(materiels=materiels, client=client, due=due, now=now, start=start, by=by, notes=notes)
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
        LoanEvent.objects.create(attribution=locked, kind=LoanEvent.Kind.RETURNED, at=returned_at, by=person(by))
        locked.extension_requests.filter(statut=ExtensionRequest.Statut.EN_ATTENTE).update(
            statut=ExtensionRequest.Statut.CLOSED, decided_at=now
        )
        transaction.on_commit(lambda: attribution_returned.send(sender=Attribution, attribution=locked, now=now))
    attribution.refresh_from_db()
    return locked


def may_extend_beyond_limit(by: User | AnonymousUser | None) -> bool:
    return by is not None and by.has_perm("assets.extend_beyond_limit")


def validate_extend(attribution: Attribution, *, new_due: datetime, by: User | AnonymousUser | None = None) -> None:
    """Also refuses an extension past EXTENSION_MAX_PER_LOAN, for staff as for borrowers, unless ``by``
    holds ``assets.extend_beyond_limit``. Bringing the due date forward is never limited."""
    if not attribution.is_open:
        raise ValidationError(_("A returned loan cannot be extended."), code="already_returned")
    if new_due <= attribution.date_debut:
        raise ValidationError({"date_retour_prevue": _("The due date must be after the start of the loan.")})
    if new_due == attribution.date_retour_prevue:
        raise ValidationError({"date_retour_prevue": _("The new due date is the same as the current one.")})
    limit = settings.EXTENSION_MAX_PER_LOAN
    if new_due > attribution.date_retour_prevue and not may_extend_beyond_limit(by):
        done = extensions_of(attribution.pk).count()
        if done >= limit:
            raise ValidationError(
                _("This loan was already extended %(done)d times, the most allowed (%(limit)d).")
                % {"done": done, "limit": limit},
                code="extension_limit",
            )


def extend(
    attribution: Attribution, *, new_due: datetime, now: datetime, by: User | AnonymousUser | None = None
) -> Attribution:
    """Move the loan's due date (later or earlier); its duration class follows."""
    with transaction.atomic():
        locked = Attribution.objects.select_for_update().select_related("materiel", "client").get(pk=attribution.pk)
        validate_extend(locked, new_due=new_due, by=by)
        previous_due = locked.date_retour_prevue
        locked.date_retour_prevue = new_due
        locked.save(update_fields=["date_retour_prevue"])
        LoanEvent.objects.create(
            attribution=locked,
            kind=LoanEvent.Kind.EXTENDED,
            at=now,
            by=person(by),
            old_due=previous_due,
            new_due=new_due,
        )
        transaction.on_commit(
            lambda: attribution_extended.send(
                sender=Attribution, attribution=locked, now=now, previous_due=previous_due
            )
        )
    attribution.refresh_from_db()
    return locked


def add_note(
    attribution: Attribution, *, text: str, now: datetime, by: User | AnonymousUser | None = None
) -> LoanEvent:
    """A note on the loan's history (who said what, when); the loan itself does not change."""
    text = (text or "").strip()
    if not text:
        raise ValidationError({"note": _("Write the note first.")}, code="empty")
    return LoanEvent.objects.create(attribution=attribution, kind=LoanEvent.Kind.NOTE, at=now, by=person(by), note=text)


# --- Extension requests (docs/borrower-page.md) -----------------------------


def validate_extension_request(attribution: Attribution, *, new_due: datetime, now: datetime) -> None:
    """The rules a borrower's request must meet (settings EXTENSION_*); ValidationError saying which it breaks."""
    if not attribution.is_open:
        raise ValidationError(_("This loan was already returned."), code="already_returned")
    if new_due <= attribution.date_retour_prevue or new_due <= now:
        raise ValidationError(
            {"new_due": ValidationError(_("Choose a time after the current due time."), code="not_later")}
        )
    late = elapsed(attribution.date_retour_prevue, now)
    limit_hours = settings.EXTENSION_REFUSE_WHEN_LATE_HOURS
    if late > timedelta(hours=limit_hours):
        raise ValidationError(
            ngettext(
                "This loan is more than %(hours)d hour late: it can no longer be extended here. Please contact us.",
                "This loan is more than %(hours)d hours late: it can no longer be extended here. Please contact us.",
                limit_hours,
            )
            % {"hours": limit_hours},
            code="too_late",
        )
    granted = extensions_of(attribution.pk).count()  # the staff's extensions count too: one limit per loan
    if granted >= settings.EXTENSION_MAX_PER_LOAN:
        raise ValidationError(
            ngettext(
                "This loan was already extended %(count)d time, the most allowed. Please contact us.",
                "This loan was already extended %(count)d times, the most allowed. Please contact us.",
                granted,
            )
            % {"count": granted},
            code="too_many",
        )
    max_days = settings.EXTENSION_MAX_TOTAL_DAYS
    if elapsed(attribution.date_debut, new_due) > timedelta(days=max_days):
        message = ngettext(
            "A loan cannot last more than %(days)d day in all.",
            "A loan cannot last more than %(days)d days in all.",
            max_days,
        ) % {"days": max_days}
        raise ValidationError({"new_due": ValidationError(message, code="too_long")})


def default_extension_due(attribution: Attribution) -> datetime:
    """The time asked for by a request that names none (a "Prolonger" button): EXTENSION_DEFAULT_HOURS later,
    within the maximum total duration."""
    wanted = attribution.date_retour_prevue + timedelta(hours=settings.EXTENSION_DEFAULT_HOURS)
    return min(wanted, attribution.date_debut + timedelta(days=settings.EXTENSION_MAX_TOTAL_DAYS))


def request_extension(
    attribution: Attribution,
    *,
    now: datetime,
    new_due: datetime | None = None,
    source: str = ExtensionRequest.Source.PAGE,
) -> ExtensionRequest:
    """The borrower asks for the loan to be due at ``new_due`` (default: `default_extension_due`).

    Raises ValidationError when the rules refuse it (nothing is saved). Within the rules it is
    granted at once through `extend` (statut ACCORDEE) or, with EXTENSION_REQUIRES_APPROVAL,
    waits for staff (EN_ATTENTE). A loan has at most one waiting request: asking again while
    one waits changes its time.
    """
    with transaction.atomic():
        locked = Attribution.objects.select_for_update().select_related("materiel", "client").get(pk=attribution.pk)
        new_due = new_due or default_extension_due(locked)
        validate_extension_request(locked, new_due=new_due, now=now)
        pending = locked.extension_requests.filter(statut=ExtensionRequest.Statut.EN_ATTENTE).first()
        request = pending or ExtensionRequest(attribution=locked)
        request.requested_due = new_due
        request.previous_due = locked.date_retour_prevue
        request.source = source
        request.requested_at = now
        if settings.EXTENSION_REQUIRES_APPROVAL:
            request.save()
            return request
        request.statut = ExtensionRequest.Statut.ACCORDEE
        request.decided_at = now
        request.save()
        extend(locked, new_due=new_due, now=now)
    return request


def _pending(request: ExtensionRequest) -> ExtensionRequest:
    locked = (
        ExtensionRequest.objects.select_for_update()
        .select_related("attribution__client", "attribution__materiel")
        .get(pk=request.pk)
    )
    if not locked.is_pending:
        raise ValidationError(_("This request was already decided."), code="already_decided")
    return locked


def approve_extension(
    request: ExtensionRequest, *, now: datetime, by: User | AnonymousUser | None = None
) -> ExtensionRequest:
    """Staff grant a waiting request: the loan is extended (`extend`: reminders re-armed, the borrower told)."""
    with transaction.atomic():
        locked = _pending(request)
        extend(locked.attribution, new_due=locked.requested_due, now=now, by=by)
        locked.statut = ExtensionRequest.Statut.ACCORDEE
        locked.decided_at = now
        locked.decided_by = person(by)
        locked.save(update_fields=["statut", "decided_at", "decided_by"])
    return locked


def refuse_extension(
    request: ExtensionRequest, *, reason: str, now: datetime, by: User | AnonymousUser | None = None
) -> ExtensionRequest:
    """Staff refuse a waiting request with a reason; the borrower is told (PROLONGATION_REFUSEE)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("Say why, for the borrower.")}, code="required")
    try:
        validate_single_line(reason)
    except ValidationError as error:
        raise ValidationError({"reason": error.messages}) from None
    with transaction.atomic():
        locked = _pending(request)
        locked.statut = ExtensionRequest.Statut.REFUSEE
        locked.reason = reason
        locked.decided_at = now
        locked.decided_by = person(by)
        locked.save(update_fields=["statut", "reason", "decided_at", "decided_by"])
        attribution = locked.attribution
        transaction.on_commit(
            lambda: extension_refused.send(
                sender=ExtensionRequest, attribution=attribution, now=now, extension_request=locked
            )
        )
    return locked


def revoke_borrower_link(attribution: Attribution) -> None:
    """The loan's borrower links stop working at once; messages sent from now on carry a new one."""
    Attribution.objects.filter(pk=attribution.pk).update(borrower_link_version=F("borrower_link_version") + 1)
    attribution.refresh_from_db(fields=["borrower_link_version"])
