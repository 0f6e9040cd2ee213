"""The lending domain: what we lend (Materiel), to whom (Client), and each loan (Attribution)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from .validators import refuse_control_characters, validate_single_line

COURT_MAX = timedelta(hours=4)
MOYEN_MAX = timedelta(hours=24)


def normalize_phone(raw: str) -> str:
    """Return ``raw`` as an E.164 number, or raise ValidationError saying why it is not one."""
    raw = (raw or "").strip()
    if not raw:
        return ""
    try:
        number = phonenumbers.parse(raw, settings.PHONE_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise ValidationError(
            _("“%(value)s” is not a phone number."), code="invalid_phone", params={"value": raw}
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(
            _("“%(value)s” is not a valid phone number (use the international form, e.g. +33 6 12 34 56 78)."),
            code="invalid_phone",
            params={"value": raw},
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class PhoneNumberField(models.CharField):
    """A phone number stored in E.164; any readable input is normalised on clean."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 20)
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        return normalize_phone(super().to_python(value) or "")


class Language(models.TextChoices):
    FR = "fr", _("French")
    EN = "en", _("English")


class MaterielQuerySet(models.QuerySet):
    def by_code(self, code: str) -> MaterielQuerySet:
        """The material with this code whatever its case (codes are unique regardless of case)."""
        return self.alias(code_lower=Lower("code")).filter(code_lower=Lower(Value((code or "").strip())))


class Materiel(models.Model):
    class State(models.TextChoices):
        AVAILABLE = "available", _("Available")
        LENT = "lent", _("Lent")
        OUT_OF_SERVICE = "out_of_service", _("Out of service")

    code = models.CharField(
        _("code"),
        max_length=64,
        unique=True,
        help_text=_("Inventory code or barcode."),
        validators=[validate_single_line],
    )
    name = models.CharField(_("name"), max_length=200, validators=[validate_single_line])
    category = models.CharField(_("category"), max_length=100, blank=True, validators=[validate_single_line])
    state = models.CharField(_("state"), max_length=20, choices=State.choices, default=State.AVAILABLE)
    notes = models.TextField(_("notes"), blank=True)

    objects = MaterielQuerySet.as_manager()

    class Meta:
        verbose_name = _("material")
        verbose_name_plural = _("materials")
        ordering = ["code"]
        indexes = [models.Index(fields=["state", "code"], name="materiel_state_code")]
        constraints = [
            # A scanner or a hand may type the code in either case: "cam-001" is "CAM-001".
            models.UniqueConstraint(
                Lower("code"),
                name="materiel_code_unique_any_case",
                violation_error_message=_("A material already has this code (codes are compared regardless of case)."),
            )
        ]

    def __str__(self) -> str:
        return f"{self.code} — {self.name}"

    def save(self, *args, **kwargs):
        self.code = self.code.strip()
        refuse_control_characters(self)
        super().save(*args, **kwargs)


class Client(models.Model):
    name = models.CharField(_("name"), max_length=200, validators=[validate_single_line])
    email = models.EmailField(_("email"), blank=True)
    phone = PhoneNumberField(_("phone"), blank=True, help_text=_("International form, e.g. +33 6 12 34 56 78."))
    organisation = models.CharField(_("organisation"), max_length=200, blank=True, validators=[validate_single_line])
    language = models.CharField(_("language"), max_length=5, choices=Language.choices, default=Language.FR)

    class Meta:
        verbose_name = _("client")
        verbose_name_plural = _("clients")
        ordering = ["name"]
        indexes = [models.Index(fields=["name"], name="client_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.organisation})" if self.organisation else self.name

    def save(self, *args, **kwargs):
        refuse_control_characters(self)
        super().save(*args, **kwargs)

    @property
    def has_contact(self) -> bool:
        return bool(self.email or self.phone)


class Duree(models.TextChoices):
    COURT = "COURT", _("Short (< 4 h)")
    MOYEN = "MOYEN", _("Medium (4 h – 24 h)")
    LONG = "LONG", _("Long (> 24 h)")


def elapsed(start: datetime, end: datetime) -> timedelta:
    """Real time between two aware datetimes.

    Python subtracts two datetimes that share a tzinfo on the wall clock, which
    is an hour off across a DST change; converting to UTC first gives real time.
    """
    return end.astimezone(UTC) - start.astimezone(UTC)


def classify_duree(date_debut: datetime, date_retour_prevue: datetime) -> str:
    """Duration class from the planned duration in real elapsed hours (DST-safe)."""
    planned = elapsed(date_debut, date_retour_prevue)
    if planned < COURT_MAX:
        return Duree.COURT
    if planned <= MOYEN_MAX:
        return Duree.MOYEN
    return Duree.LONG


def overdue_at(now: datetime) -> Q:
    """An open loan is overdue once its due time has passed (`Attribution.is_overdue` for one loan)."""
    return Q(date_retour_prevue__lt=now)


class AttributionQuerySet(models.QuerySet):
    def open(self) -> AttributionQuerySet:
        return self.filter(date_retour_effective__isnull=True)

    def returned(self) -> AttributionQuerySet:
        return self.filter(date_retour_effective__isnull=False)

    def overdue(self, now: datetime) -> AttributionQuerySet:
        return self.open().filter(overdue_at(now))


class Attribution(models.Model):
    """One loan of one Materiel to one Client."""

    class Statut(models.TextChoices):
        EN_COURS = "EN_COURS", _("Out")
        RESTITUEE = "RESTITUEE", _("Returned")

    materiel = models.ForeignKey(
        Materiel, on_delete=models.PROTECT, related_name="attributions", verbose_name=_("material")
    )
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="attributions", verbose_name=_("client"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="attributions_created",
        verbose_name=_("lent by"),
    )
    date_debut = models.DateTimeField(_("start"))
    date_retour_prevue = models.DateTimeField(_("due"))
    date_retour_effective = models.DateTimeField(_("returned at"), null=True, blank=True)
    statut = models.CharField(_("status"), max_length=10, choices=Statut.choices, default=Statut.EN_COURS)
    duree = models.CharField(_("duration class"), max_length=5, choices=Duree.choices, editable=False)
    notes = models.TextField(_("notes"), blank=True)
    created_at = models.DateTimeField(_("recorded at"), auto_now_add=True)
    # Part of the borrower's link (`assets.borrower_links`): staff revoke the link by moving it on.
    borrower_link_version = models.PositiveIntegerField(_("borrower link version"), default=0, editable=False)

    objects = AttributionQuerySet.as_manager()

    class Meta:
        verbose_name = _("loan")
        verbose_name_plural = _("loans")
        ordering = ["-date_debut"]
        permissions = [("extend_beyond_limit", _("Can extend a loan beyond EXTENSION_MAX_PER_LOAN"))]
        constraints = [
            models.UniqueConstraint(
                fields=["materiel"],
                condition=Q(date_retour_effective__isnull=True),
                name="one_open_loan_per_materiel",
                violation_error_message=_("This material is already out on another loan."),
            ),
            models.CheckConstraint(
                condition=Q(date_retour_prevue__gt=F("date_debut")),
                name="due_after_start",
                violation_error_message=_("The due date must be after the start."),
            ),
            models.CheckConstraint(
                condition=Q(date_retour_effective__isnull=True) | Q(date_retour_effective__gte=F("date_debut")),
                name="return_not_before_start",
                violation_error_message=_("A loan cannot be returned before it started."),
            ),
            models.CheckConstraint(
                condition=Q(statut="EN_COURS", date_retour_effective__isnull=True)
                | Q(statut="RESTITUEE", date_retour_effective__isnull=False),
                name="statut_matches_return",
            ),
            models.CheckConstraint(condition=Q(duree__in=Duree.values), name="duree_valid"),
        ]
        indexes = [
            # The checks: open loans of one class by due time.
            models.Index(
                fields=["duree", "date_retour_prevue"],
                condition=Q(date_retour_effective__isnull=True),
                name="open_loans_by_class_due",
            ),
            # Overdue and "due soon" across classes.
            models.Index(
                fields=["date_retour_prevue"],
                condition=Q(date_retour_effective__isnull=True),
                name="open_loans_by_due",
            ),
            models.Index(fields=["client", "-date_debut"], name="loans_by_client"),
            models.Index(fields=["date_retour_effective"], name="loans_by_return"),
            # The staff loan list, newest first (its default order for returned and all loans).
            models.Index(fields=["date_debut", "id"], name="loans_by_start"),
        ]

    def __str__(self) -> str:
        return f"{self.materiel.code} → {self.client.name}"

    def save(self, *args, **kwargs):
        if self.date_debut and self.date_retour_prevue:
            self.duree = classify_duree(self.date_debut, self.date_retour_prevue)
        self.statut = self.Statut.EN_COURS if self.date_retour_effective is None else self.Statut.RESTITUEE
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "duree", "statut"}
        super().save(*args, **kwargs)

    @property
    def is_open(self) -> bool:
        return self.date_retour_effective is None

    @property
    def planned_duration(self) -> timedelta:
        return elapsed(self.date_debut, self.date_retour_prevue)

    def is_overdue(self, now: datetime) -> bool:
        return self.is_open and now > self.date_retour_prevue

    def time_remaining(self, now: datetime) -> timedelta:
        """Time until due; negative when late. Zero once returned."""
        if not self.is_open:
            return timedelta(0)
        return elapsed(now, self.date_retour_prevue)


class ExtensionRequest(models.Model):
    """A borrower asked for a later due time (`assets.services.request_extension`): granted, refused or waiting."""

    class Statut(models.TextChoices):
        EN_ATTENTE = "EN_ATTENTE", _("Waiting for staff")
        ACCORDEE = "ACCORDEE", _("Granted")
        REFUSEE = "REFUSEE", _("Refused")
        # The item came back before staff decided: nothing left to decide.
        CLOSED = "CLOSED", _("Closed: the item came back")

    class Source(models.TextChoices):
        PAGE = "PAGE", _("Borrower page")
        WHATSAPP = "WHATSAPP", _("WhatsApp")
        SMS = "SMS", _("SMS")

    attribution = models.ForeignKey(
        Attribution, on_delete=models.CASCADE, related_name="extension_requests", verbose_name=_("loan")
    )
    requested_due = models.DateTimeField(_("requested due time"))
    previous_due = models.DateTimeField(_("due time when asked"))
    statut = models.CharField(_("status"), max_length=10, choices=Statut.choices, default=Statut.EN_ATTENTE)
    source = models.CharField(_("asked through"), max_length=10, choices=Source.choices, default=Source.PAGE)
    requested_at = models.DateTimeField(_("asked at"))
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("decided by"),
    )
    reason = models.TextField(_("reason for refusal"), blank=True, validators=[validate_single_line])

    class Meta:
        verbose_name = _("extension request")
        verbose_name_plural = _("extension requests")
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["attribution"], condition=Q(statut="EN_ATTENTE"), name="one_pending_extension_per_loan"
            ),
        ]
        indexes = [
            # The dashboard's "waiting for staff", oldest first.
            models.Index(fields=["requested_at"], condition=Q(statut="EN_ATTENTE"), name="extension_requests_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.attribution_id} → {self.requested_due:%Y-%m-%d %H:%M} ({self.statut})"

    @property
    def is_pending(self) -> bool:
        return self.statut == self.Statut.EN_ATTENTE


class LoanEvent(models.Model):
    """One change of a loan, who made it and when: its history. Written by `assets.services` only,
    in the transaction of the change itself, so the history never disagrees with the loan."""

    class Kind(models.TextChoices):
        LENT = "LENT", _("Lent")
        EXTENDED = "EXTENDED", _("Due date changed")
        RETURNED = "RETURNED", _("Returned")
        NOTE = "NOTE", _("Note")

    attribution = models.ForeignKey(
        Attribution, on_delete=models.CASCADE, related_name="events", verbose_name=_("loan")
    )
    kind = models.CharField(_("what"), max_length=10, choices=Kind.choices)
    at = models.DateTimeField(_("when"))
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )
    old_due = models.DateTimeField(_("previous due date"), null=True, blank=True)
    new_due = models.DateTimeField(_("new due date"), null=True, blank=True)
    note = models.TextField(_("note"), blank=True)

    class Meta:
        verbose_name = _("loan event")
        verbose_name_plural = _("loan events")
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["attribution", "at", "id"], name="loan_events_by_loan")]

    def __str__(self) -> str:
        return f"{self.attribution_id} {self.kind} {self.at:%Y-%m-%d %H:%M}"

    @property
    def is_extension(self) -> bool:
        """A due date moved later: what EXTENSION_MAX_PER_LOAN counts (bringing it forward is not one)."""
        return self.kind == self.Kind.EXTENDED and bool(self.old_due and self.new_due and self.new_due > self.old_due)


def extensions_of(attribution_id: int) -> models.QuerySet[LoanEvent]:
    return LoanEvent.objects.filter(
        attribution_id=attribution_id, kind=LoanEvent.Kind.EXTENDED, new_due__gt=F("old_due")
    )


# The original spec imports the notification models from here (`from assets.models import NotificationLog`,
# `from assets.models import *`). They live in `notifications`; they are looked up on first use so
# that importing `assets.models` never imports `notifications` (which imports this module).
SPEC_NOTIFICATION_MODELS = ("NotificationLog", "NotificationPreferences", "WhatsAppConfig", "MessageOverride")

__all__ = [
    "Attribution",
    "Client",
    "Duree",
    "ExtensionRequest",
    "Language",
    "LoanEvent",
    "Materiel",
    *SPEC_NOTIFICATION_MODELS,
]


def __getattr__(name: str):
    if name in SPEC_NOTIFICATION_MODELS:
        from notifications import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
