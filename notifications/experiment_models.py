"""Models of the two learning features: message experiments (A/B) and the learned send time.

Imported by `notifications.models` so Django registers them in the ``notifications`` app.
The logic lives in `notifications.experiments` and `notifications.send_time`.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

# Imported last by `notifications.models`, once these are defined.
from .models import Canal, MessageOverride, TypeNotification


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

