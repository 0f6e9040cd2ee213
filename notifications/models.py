"""What we told whom, when, and how: the notification audit trail and preferences."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from assets.models import Attribution, Client, PhoneNumberField
from assets.validators import validate_single_line, validate_text

from .channels import REGISTRY as CHANNEL_REGISTRY

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


class TypeNotification(models.TextChoices):
    CREATION = "CREATION", _("Loan confirmation")
    RAPPEL_2H = "RAPPEL_2H", _("Reminder 2 h before")
    RAPPEL_J_MOINS_2 = "RAPPEL_J_MOINS_2", _("Reminder 2 days before")
    RAPPEL_J_MOINS_1 = "RAPPEL_J_MOINS_1", _("Reminder 1 day before")
    RAPPEL_FINAL = "RAPPEL_FINAL", _("Reminder on the due day")
    RETARD = "RETARD", _("Overdue alert")
    RESTITUTION = "RESTITUTION", _("Return receipt")
    PROLONGATION = "PROLONGATION", _("Extension notice")
    PROLONGATION_REFUSEE = "PROLONGATION_REFUSEE", _("Extension refused")
    # The answer to a message the borrower sent us (`notifications.inbound`): never planned, one per inbound message.
    REPONSE = "REPONSE", _("Reply to the borrower")


REMINDER_TYPES = frozenset(
    {
        TypeNotification.RAPPEL_2H,
        TypeNotification.RAPPEL_J_MOINS_2,
        TypeNotification.RAPPEL_J_MOINS_1,
        TypeNotification.RAPPEL_FINAL,
    }
)

# Sent while the borrower is standing at the desk, or has just written to us and waits for the
# answer (REPONSE): these go through the priority queue (`radgestmat.queues`), never behind a
# backlog of reminders.
DESK_TYPES = frozenset(
    {TypeNotification.CREATION, TypeNotification.RESTITUTION, TypeNotification.PROLONGATION, TypeNotification.REPONSE}
)


# Derived from the channel registry (one place per channel): Canal.EMAIL, Canal.WHATSAPP, Canal.SMS.
Canal = models.TextChoices("Canal", [(spec.canal, (spec.canal, spec.label)) for spec in CHANNEL_REGISTRY])  # type: ignore[call-overload]  # django-stubs: functional API with (value, label) members


class Audience(models.TextChoices):
    CLIENT = "CLIENT", _("Borrower")
    STAFF = "STAFF", _("Staff member who lent")
    MANAGER = "MANAGER", _("Manager")


class Statut(models.TextChoices):
    EN_ATTENTE = "EN_ATTENTE", _("Waiting")
    EN_COURS = "EN_COURS", _("Sending")
    ENVOYEE = "ENVOYEE", _("Sent")
    ECHEC = "ECHEC", _("Failed, will retry")
    ECHEC_PERMANENT = "ECHEC_PERMANENT", _("Failed permanently")
    ANNULEE = "ANNULEE", _("Cancelled")


class CodeErreur(models.TextChoices):
    """Why a notification failed, in a few stable words: what `erreur_message` says in detail.

    Set by the channel that classified the failure (the code travels with the exception),
    or by the send service and the relay for what happens around the channel.
    """

    CREDENTIALS = "CREDENTIALS", _("Credentials rejected by the provider")
    MISCONFIGURED = "MISCONFIGURED", _("Channel not or wrongly configured")
    INVALID_RECIPIENT = "INVALID_RECIPIENT", _("Invalid or refused recipient")
    OPTED_OUT = "OPTED_OUT", _("Recipient opted out or cannot receive on this channel")
    RATE_LIMITED = "RATE_LIMITED", _("Rate limited by the provider")
    PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE", _("Provider unreachable or temporarily failing")
    AMBIGUOUS = "AMBIGUOUS", _("May have gone out: check the provider's logs")
    WORKER_STOPPED = "WORKER_STOPPED", _("Worker stopped while sending")
    CONTENT = "CONTENT", _("Message template error")
    CAP_REACHED = "CAP_REACHED", _("Daily cap reached")
    OTHER = "OTHER", _("Other")


# Failures a retry cannot fix: the address itself is wrong or refuses us. The pages offer to edit the client.
FIX_THE_CLIENT = (CodeErreur.INVALID_RECIPIENT, CodeErreur.OPTED_OUT)

# A send task may only claim a row in one of these states.
CLAIMABLE_STATUTS = (Statut.EN_ATTENTE, Statut.ECHEC)
FINAL_STATUTS = (Statut.ENVOYEE, Statut.ECHEC_PERMANENT, Statut.ANNULEE)


# A failed row whose retry time is this far past has lost its retry message (the relay sends it again).
LOST_RETRY_AFTER = timedelta(minutes=5)


def due_by(moment) -> Q:
    """When a row is due: waiting and scheduled by ``moment``, or failed with its retry time come.

    The one definition of "due" (relay, status page, health, dashboard); ``moment`` is the
    database's clock on the workers (`radgestmat.clock`).
    """
    retry_come = Q(date_tentative_prochaine__isnull=True) | Q(date_tentative_prochaine__lte=moment)
    return Q(date_scheduled__lte=moment) & (Q(statut=Statut.EN_ATTENTE) | (Q(statut=Statut.ECHEC) & retry_come))


def late_cutoff(now: datetime) -> datetime:
    """Rows due before this moment are late: the timing promise is broken (dashboard, /scheduler/, /healthz)."""
    return now - timedelta(minutes=settings.NOTIFICATION_BACKLOG_MAX_MINUTES)


class NotificationLogQuerySet(models.QuerySet):
    def claimable(self) -> NotificationLogQuerySet:
        return self.filter(statut__in=CLAIMABLE_STATUTS)

    def due(self, now) -> NotificationLogQuerySet:
        return self.filter(due_by(now))

    def to_relay(self, now) -> NotificationLogQuerySet:
        """Due rows no live message will deliver: waiting rows never enqueued or past their redelivery
        time, failed rows whose retry message must be lost."""
        not_in_flight = (
            Q(date_tentative_prochaine__isnull=True)
            | Q(statut=Statut.EN_ATTENTE, date_tentative_prochaine__lte=now)
            | Q(statut=Statut.ECHEC, date_tentative_prochaine__lte=now - LOST_RETRY_AFTER)
        )
        return self.due(now).filter(not_in_flight)

    def create(self, **kwargs) -> NotificationLog:
        """Create a row, or return the one that already stands for this notification.

        A notification has one row (loan, type, channel, audience, level). The spec's integration
        test creates by hand the CREATION row that the loan's signal has already planned: it gets
        that row, not an IntegrityError. Any other integrity error is raised.
        """
        try:
            with transaction.atomic(using=self.db):
                return super().create(**kwargs)
        except IntegrityError:
            attribution = kwargs.get("attribution")
            existing = self.filter(
                attribution_id=attribution.pk if attribution is not None else kwargs.get("attribution_id"),
                type_notification=kwargs.get("type_notification"),
                canal=kwargs.get("canal"),
                audience=kwargs.get("audience", Audience.CLIENT),
                niveau_escalade=kwargs.get("niveau_escalade", 0),
            ).first()
            if existing is None:
                raise
            return existing


class NotificationLog(models.Model):
    """One notification of one loan on one channel: planned, then sent or failed, with every attempt."""

    attribution = models.ForeignKey(
        Attribution, on_delete=models.CASCADE, related_name="notifications", verbose_name=_("loan")
    )
    type_notification = models.CharField(_("type"), max_length=20, choices=TypeNotification.choices)
    canal = models.CharField(_("channel"), max_length=10, choices=Canal.choices)
    audience = models.CharField(_("audience"), max_length=10, choices=Audience.choices, default=Audience.CLIENT)
    niveau_escalade = models.PositiveSmallIntegerField(
        _("escalation level"),
        default=0,
        help_text=_("0 except for overdue alerts, which count 1, 2, 3…, and extension notices, one per extension."),
    )
    # An extension notice's "moved from" date: the due date the borrower last heard of.
    previous_due = models.DateTimeField(_("previous due date"), null=True, blank=True)
    statut = models.CharField(_("status"), max_length=20, choices=Statut.choices, default=Statut.EN_ATTENTE)
    # Default now: a row created by hand (the spec's integration test) is due at once.
    date_scheduled = models.DateTimeField(_("scheduled for"), default=timezone.now)
    date_envoi = models.DateTimeField(_("sent at"), null=True, blank=True)
    date_tentative_prochaine = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    date_claimed = models.DateTimeField(_("claimed at"), null=True, blank=True)
    nb_tentatives = models.PositiveSmallIntegerField(_("attempts"), default=0)
    duree_emprunt = models.CharField(_("loan duration class"), max_length=5, blank=True)
    destinataire = models.CharField(_("recipient"), max_length=254, blank=True)
    # db_default: the processes still running the previous release insert rows without this column.
    erreur_code = models.CharField(
        _("failure cause"), max_length=30, choices=CodeErreur.choices, blank=True, default="", db_default=""
    )
    erreur_message = models.TextField(_("error"), blank=True)
    # Our own words about a cancellation or a failure, as a code and its parameters, translated when
    # shown (`notifications.reasons`); `erreur_message` keeps only the provider's text, as received.
    reason_code = models.CharField(_("reason"), max_length=30, blank=True, default="", db_default="")
    reason_params = models.JSONField(_("reason details"), null=True, blank=True)
    provider_message_id = models.CharField(_("provider message id"), max_length=64, blank=True, db_index=True)
    delivery_status = models.CharField(_("delivery status"), max_length=20, blank=True)
    fallback_of = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="fallbacks",
        verbose_name=_("fallback of"),
        help_text=_("The notification on another channel whose permanent failure led to this one."),
    )
    # Null for rows outside any experiment, and for rows inserted by processes of the previous release.
    variant = models.ForeignKey(
        "notifications.Variant",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="notifications",
        verbose_name=_("experiment variant"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = NotificationLogQuerySet.as_manager()

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-date_scheduled", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["attribution", "type_notification", "canal", "audience", "niveau_escalade"],
                # Replies are one per inbound message (InboundMessage.reply), as many as the borrower writes.
                condition=~Q(type_notification="REPONSE"),
                name="one_notification_per_loan_type_channel_level",
            ),
            models.CheckConstraint(condition=Q(nb_tentatives__lte=10), name="nb_tentatives_bounded"),
        ]
        indexes = [
            # The relay: "what is due now".
            models.Index(
                fields=["date_scheduled"],
                condition=Q(statut__in=["EN_ATTENTE", "ECHEC"]),
                name="notif_due",
            ),
            # Stranded claims.
            models.Index(fields=["date_claimed"], condition=Q(statut="EN_COURS"), name="notif_claimed"),
            # Cleanup by age: it walks (created_at, id) in batches.
            models.Index(fields=["created_at", "id"], name="notif_by_age"),
            # The log page and delivery-rate report.
            models.Index(fields=["statut", "canal", "created_at"], name="notif_status_channel_age"),
            # The staff log page, newest first, and the dashboard's week.
            models.Index(fields=["date_scheduled", "id"], name="notif_by_scheduled"),
            # The staff log filtered by status ("the failures"), newest first.
            models.Index(fields=["statut", "date_scheduled"], name="notif_status_scheduled"),
            # The staff log filtered by cause, and the credentials alert. Only failed rows have a cause.
            models.Index(fields=["erreur_code", "date_scheduled"], condition=~Q(erreur_code=""), name="notif_by_cause"),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_notification_display()} / {self.get_canal_display()} — {self.get_statut_display()}"

    @property
    def needs_client_fix(self) -> bool:
        return self.erreur_code in FIX_THE_CLIENT

    @property
    def our_words(self) -> str:
        from .reasons import our_words

        return our_words(self)

    @property
    def reason_text(self) -> str:
        """Our words then the provider's text: what a one-line summary or an export shows."""
        from .reasons import full_text

        return full_text(self)


class NotificationPreferences(models.Model):
    """How one person wants to be told: channels, phone, and which reminders. For a client or a staff user."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notification_preferences",
    )
    client = models.OneToOneField(
        Client, on_delete=models.CASCADE, null=True, blank=True, related_name="notification_preferences"
    )
    notifications_email = models.BooleanField(_("email"), default=True)
    # Opt-in: WhatsApp's business policy needs the borrower's consent before we message them there.
    notifications_whatsapp = models.BooleanField(
        _("WhatsApp"), default=False, help_text=_("Only with the borrower’s consent: WhatsApp requires it.")
    )
    sms_enabled = models.BooleanField(_("SMS"), default=False)
    phone_number = PhoneNumberField(
        _("phone for WhatsApp/SMS"), blank=True, help_text=_("Leave empty to use the client's phone.")
    )
    # On by default, unlike the spec's `default=False`: its own short-loan timeline sends this reminder.
    rappel_2h_avant = models.BooleanField(_("reminder 2 h before (short and medium loans)"), default=True)
    rappel_j_moins_2 = models.BooleanField(_("reminder 2 days before (long loans)"), default=True)
    rappel_j_moins_1 = models.BooleanField(_("reminder 1 day before (long loans)"), default=True)
    rappel_final = models.BooleanField(_("reminder on the due day (long loans)"), default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("notification preferences")
        verbose_name_plural = _("notification preferences")
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, client__isnull=True) | Q(user__isnull=True, client__isnull=False),
                name="preferences_for_user_xor_client",
                violation_error_message=_("Preferences belong to exactly one user or one client."),
            )
        ]

    def __str__(self) -> str:
        return str(self.client or self.user)


class WhatsAppConfig(models.Model):
    """The WhatsApp sender. Credentials are not here: they come from the environment only.

    The spec's ``api_key`` / ``api_secret`` columns are deliberately absent: ``TWILIO_ACCOUNT_SID`` and
    ``TWILIO_AUTH_TOKEN`` are read from the environment, never stored in the database.
    """

    class Provider(models.TextChoices):
        TWILIO = "TWILIO", "Twilio"

    phone_number_sender = PhoneNumberField(_("sender number"))
    api_provider = models.CharField(_("provider"), max_length=20, choices=Provider.choices, default=Provider.TWILIO)
    is_active = models.BooleanField(_("active"), default=True)
    content_templates = models.JSONField(
        _("content templates"),
        default=dict,
        blank=True,
        help_text=_('Approved Content Template SID per notification type, e.g. {"RAPPEL_2H": "HX…"}.'),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("WhatsApp configuration")
        verbose_name_plural = _("WhatsApp configurations")
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="one_active_whatsapp_config"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_api_provider_display()} {self.phone_number_sender}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        problems = content_sid_problems(self.content_templates)
        if problems:
            raise ValidationError({"content_templates": problems})


def content_sid_problems(mapping) -> list[StrOrPromise]:
    """What is wrong with a {type: Content Template SID} map (empty when nothing is)."""
    if not isinstance(mapping, dict):
        return [_("Give an object mapping notification types to template SIDs.")]
    problems: list[StrOrPromise] = []
    for kind, sid in mapping.items():
        # "<TYPE>_GROUP": the type's list form, for one message about several items.
        if not isinstance(kind, str) or kind.removesuffix("_GROUP") not in TypeNotification.values:
            problems.append(
                _("“%(type)s” is not a notification type (one of %(types)s).")
                % {"type": kind, "types": ", ".join(TypeNotification.values)}
            )
        elif not (isinstance(sid, str) and sid.startswith("HX") and len(sid) == 34):
            problems.append(
                _("The template SID for %(type)s must look like HX followed by 32 characters.") % {"type": kind}
            )
    return problems


class MessageOverride(models.Model):
    """A borrower message text edited in the admin, replacing the template file for one type, channel and language.

    Saving renders it with sample data first, so a broken override (unknown variable,
    bad template syntax) is refused with the reason instead of failing at send time.
    """

    type_notification = models.CharField(_("type"), max_length=20, choices=TypeNotification.choices)
    canal = models.CharField(_("channel"), max_length=10, choices=Canal.choices)
    language = models.CharField(_("language"), max_length=5, choices=settings.LANGUAGES)
    subject = models.CharField(
        _("subject"),
        max_length=200,
        blank=True,
        help_text=_("Email only. Template syntax, e.g. {{ materiel_code }}."),
        validators=[validate_single_line],
    )
    body = models.TextField(
        _("text"),
        validators=[validate_text],
        help_text=_(
            "Template syntax. Variables: client_name, materiel_code, materiel_name, start, due, returned_at, "
            "is_late, remaining, late_by, organisation, reply_to, staff_name, public_url."
        ),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("message override")
        verbose_name_plural = _("message overrides")
        ordering = ["type_notification", "canal", "language"]
        constraints = [
            models.UniqueConstraint(fields=["type_notification", "canal", "language"], name="one_override_per_message")
        ]

    def __str__(self) -> str:
        return f"{self.get_type_notification_display()} / {self.get_canal_display()} / {self.language}"

    def save(self, *args, **kwargs):
        self.clean()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        from django.core.exceptions import ValidationError
        from django.template import TemplateSyntaxError
        from django.utils import timezone

        from assets.validators import refuse_control_characters

        from .messages import ForbiddenTag, MissingVariable, check_override_source, render, sample_log

        if self.canal == Canal.EMAIL and not self.subject.strip():
            raise ValidationError({"subject": _("An email needs a subject.")})
        refuse_control_characters(self)
        for name in ("subject", "body"):
            try:
                check_override_source(getattr(self, name))
            except ForbiddenTag as error:
                raise ValidationError({name: str(error)}) from error
        log = sample_log(self.type_notification, self.canal, self.language, now=timezone.now())
        try:
            render(log, now=timezone.now(), language=self.language, override=self)
        except (TemplateSyntaxError, MissingVariable) as error:
            raise ValidationError({"body": str(error)}) from error


# --- Message experiments and the learned send time (docs/experiments.md) -----------------
# The logic lives in `notifications.experiments`, `notifications.assignment` and `notifications.send_time`.


class Experiment(models.Model):
    """Two or more variants of one borrower message (type × channel × language), each loan assigned one."""

    class Status(models.TextChoices):
        RUNNING = "RUNNING", _("Running")
        STOPPED = "STOPPED", _("Stopped")

    name = models.CharField(_("name"), max_length=120)
    type_notification = models.CharField(_("type"), max_length=20, choices=TypeNotification.choices)
    canal = models.CharField(_("channel"), max_length=10, choices=Canal.choices)
    language = models.CharField(_("language"), max_length=5, choices=settings.LANGUAGES)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.RUNNING)
    winner = models.ForeignKey(
        "Variant", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("winner")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    started_at = models.DateTimeField(_("started at"))
    stopped_at = models.DateTimeField(_("stopped at"), null=True, blank=True)

    class Meta:
        verbose_name = _("message experiment")
        verbose_name_plural = _("message experiments")
        ordering = ["-started_at", "-id"]
        permissions = [("run_experiment", _("Can run message experiments"))]
        constraints = [
            models.UniqueConstraint(
                fields=["type_notification", "canal", "language"],
                condition=Q(status="RUNNING"),
                name="one_running_experiment_per_message",
                violation_error_message=_("An experiment is already running for this message."),
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_running(self) -> bool:
        return self.status == self.Status.RUNNING


class Variant(models.Model):
    """One text of an experiment, with its share of the loans (shares are relative weights)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    label = models.CharField(_("label"), max_length=10)
    share = models.PositiveSmallIntegerField(
        _("share"), default=50, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    body = models.TextField(_("text"))

    class Meta:
        verbose_name = _("variant")
        verbose_name_plural = _("variants")
        ordering = ["experiment", "id"]
        constraints = [models.UniqueConstraint(fields=["experiment", "label"], name="one_label_per_experiment")]

    def __str__(self) -> str:
        return f"{self.experiment} / {self.label}"

    def as_override(self) -> MessageOverride:
        """This text as an unsaved `MessageOverride`: what renders it, and what validates it."""
        experiment = self.experiment
        return MessageOverride(
            type_notification=experiment.type_notification,
            canal=experiment.canal,
            language=experiment.language,
            subject=self.subject,
            body=self.body,
        )

    def clean(self) -> None:
        experiment = self.experiment
        if not (experiment.type_notification and experiment.canal and experiment.language):
            return  # the experiment's own form reports the missing message first
        # The override's own validation, so a variant is refused exactly when an override would be.
        self.as_override().clean()


class SendTimeChoice(models.Model):
    """When the planner sent (or will send) one reminder of a loan, and why: learned, or the rule."""

    class Source(models.TextChoices):
        LEARNED = "LEARNED", _("learned")
        RULE = "RULE", _("rule")

    class Why(models.TextChoices):
        LEARNED = "LEARNED", _("better return rate at that hour")
        EXPLORING = "EXPLORING", _("trying another hour")
        THIN_DATA = "THIN_DATA", _("not enough data")
        NO_BETTER_HOUR = "NO_BETTER_HOUR", _("no hour does better")
        NO_ROOM = "NO_ROOM", _("no other hour within the bounds")

    class Scope(models.TextChoices):
        BORROWER = "BORROWER", _("this borrower")
        EVERYONE = "EVERYONE", _("all borrowers")

    attribution = models.ForeignKey(
        "assets.Attribution", on_delete=models.CASCADE, related_name="send_time_choices", verbose_name=_("loan")
    )
    type_notification = models.CharField(_("type"), max_length=20)
    rule_at = models.DateTimeField(_("time by the rule"))
    chosen_at = models.DateTimeField(_("chosen time"))
    source = models.CharField(_("source"), max_length=10, choices=Source.choices)
    why = models.CharField(_("reason"), max_length=20, choices=Why.choices)
    scope = models.CharField(_("learned from"), max_length=10, choices=Scope.choices, blank=True)
    evidence = models.PositiveIntegerField(_("reminders in the history"), default=0)
    expected_on_time = models.FloatField(_("expected on-time rate"), null=True, blank=True)
    rule_on_time = models.FloatField(_("expected on-time rate by the rule"), null=True, blank=True)
    decided_at = models.DateTimeField(_("decided at"))

    class Meta:
        verbose_name = _("send time choice")
        verbose_name_plural = _("send time choices")
        constraints = [
            models.UniqueConstraint(fields=["attribution", "type_notification"], name="one_send_time_per_reminder")
        ]

    def __str__(self) -> str:
        return f"{self.attribution_id} {self.type_notification} {self.source} {self.chosen_at:%Y-%m-%d %H:%M}"


class InboundMessage(models.Model):
    """One WhatsApp or SMS message a borrower sent us (Twilio's inbound webhook, `notifications.inbound`).

    Unique on Twilio's ``message_sid``: a webhook delivered twice (Twilio retrying, or a replay)
    is recorded once and acted on once. Messages from numbers no client has are not stored.
    """

    class Kind(models.TextChoices):
        STOP = "STOP", _("Stop (channel switched off)")
        START = "START", _("Start (channel switched back on)")
        EXTEND = "EXTEND", _("Asks for an extension")
        RETURNED = "RETURNED", _("Says it was returned")
        TEXT = "TEXT", _("Message")

    message_sid = models.CharField(_("Twilio message SID"), max_length=64, unique=True)
    canal = models.CharField(_("channel"), max_length=10, choices=Canal.choices)
    from_number = models.CharField(_("from"), max_length=20)
    client = models.ForeignKey(
        Client, on_delete=models.CASCADE, related_name="inbound_messages", verbose_name=_("client")
    )
    attribution = models.ForeignKey(
        Attribution,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="inbound_messages",
        verbose_name=_("loan"),
    )
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    body = models.TextField(_("text"), blank=True)
    button_payload = models.CharField(_("button"), max_length=200, blank=True)
    received_at = models.DateTimeField(_("received at"))
    reply = models.OneToOneField(
        NotificationLog,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="inbound",
        verbose_name=_("reply"),
    )
    # A request staff have dealt with (the shelf checked, the borrower called) leaves the dashboard.
    handled_at = models.DateTimeField(_("dealt with at"), null=True, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("dealt with by"),
    )

    class Meta:
        verbose_name = _("borrower message")
        verbose_name_plural = _("borrower messages")
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["attribution", "received_at"], name="inbound_by_loan"),
            # The dashboard: what borrowers asked for lately.
            models.Index(fields=["kind", "received_at"], name="inbound_by_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} — {self.client}"
