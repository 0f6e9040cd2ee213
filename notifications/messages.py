"""What each notification says: rendered from templates (or an admin override) in the recipient's language.

Templates live under ``templates/notifications/``:

- ``email/<lang>/<type>.txt``: first line is the subject, then a blank line, then the text part;
- ``email/<lang>/<type>.html``: the HTML part, extending the shared ``email/layout.html``;
- ``whatsapp/<lang>/<type>.txt`` and ``sms/<lang>/<type>.txt``: the message body;
- ``<channel>/<lang>/<type>_group.*``, else ``<channel>/<lang>/group.*``: one message for several
  items (`notifications.digest`, `render_group`), listing them from ``items``.

Staff and manager copies of an overdue alert use ``email/<lang>/retard_staff.*`` in the
default UI language. A `MessageOverride` (admin) replaces the text of one
(type, channel, language); an email override's HTML part is its text in the shared layout.

Messages are rendered by a dedicated template engine whose ``string_if_invalid`` is a
sentinel: a template that names a variable the context lacks raises `MissingVariable`
(a permanent failure with the reason recorded) instead of sending a blank.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.template import Context, Engine, TemplateDoesNotExist, TemplateSyntaxError
from django.template.base import Lexer, TokenType
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.translation import gettext

from assets import borrower_links
from assets.models import Attribution, Client, ExtensionRequest, Materiel, elapsed
from assets.validators import one_line

from .assignment import assign
from .channels.base import PermanentError
from .models import (
    Audience,
    Canal,
    CodeErreur,
    Experiment,
    InboundMessage,
    MessageOverride,
    NotificationLog,
    TypeNotification,
    Variant,
)

_SENTINEL = "@@MISSING:%s@@"
_SENTINEL_RE = re.compile(r"@@MISSING:([^@]*)@@")

# Variables passed, in this order, to an approved WhatsApp Content Template ({{1}}, {{2}}, ...).
# Append only: an approved template names its variables by position (docs/notifications.md lists them).
CONTENT_VARIABLES = ("client_name", "materiel", "due", "delay", "organisation", "where", "previous_due")

# English day first and in words (never 12/01/2026); `SHORT_` ones, without weekday and year, for SMS.
DATETIME_FORMATS = {"fr": r"l j F Y \à H\hi", "en": r"l j F Y, H:i"}
SHORT_DATETIME_FORMATS = {"fr": r"j F \à H\hi", "en": r"j F, H:i"}
DURATION_WORDS = {
    "fr": {"day": ("jour", "jours"), "hour": "h", "minute": "min"},
    "en": {"day": ("day", "days"), "hour": "h", "minute": "min"},
}


class MissingVariable(PermanentError):
    """A message template refers to a variable that does not exist."""

    code = CodeErreur.CONTENT


class BrokenTemplate(PermanentError):
    """A message template file is missing or does not parse."""

    code = CodeErreur.CONTENT


@dataclass(frozen=True)
class Message:
    body: str
    subject: str = ""
    html: str = ""
    language: str = "fr"
    # Values for an approved WhatsApp Content Template, keyed "1", "2", ...
    content_variables: dict[str, str] = field(default_factory=dict)
    # The experiment variant whose text this is (`notifications.experiments`), recorded on the row sent.
    variant_id: int | None = None
    # The borrower's one-click unsubscribe address (RFC 8058), for an email's List-Unsubscribe headers.
    unsubscribe_url: str = ""
    # The rows this one message is sent for: several for a group (`render_group`), else empty.
    log_ids: tuple[int, ...] = ()
    # Files sent with an email: the calendar entry of the loan (`notifications.calendar`).
    attachments: tuple[Attachment, ...] = ()

    @property
    def is_group(self) -> bool:
        return len(self.log_ids) > 1


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: str
    # The full Content-Type, parameters included ("text/calendar; method=REQUEST").
    content_type: str


# Tags an admin's override may not use: they read other files (include, extends, the old ssi)
# or load code and dump the context (load, debug). The i18n tags an override needs are built in.
FORBIDDEN_OVERRIDE_TAGS = frozenset({"include", "extends", "ssi", "load", "debug"})


class ForbiddenTag(TemplateSyntaxError):
    """An override uses a tag that reaches beyond its own text."""


def check_override_source(source: str) -> None:
    """Raise `ForbiddenTag` if the override text ``source`` uses one of `FORBIDDEN_OVERRIDE_TAGS`."""
    for token in Lexer(source).tokenize():
        tag = token.contents.split()[0] if token.token_type == TokenType.BLOCK and token.contents.split() else ""
        if tag in FORBIDDEN_OVERRIDE_TAGS:
            raise ForbiddenTag(
                gettext(
                    "Includes are not allowed in a message: “{%% %(tag)s %%}” cannot be used; write the text itself."
                )
                % {"tag": tag}
            )


@cache
def override_engine() -> Engine:
    """Renders overrides: no template loader, so nothing an override says can read a file."""
    return Engine(loaders=[], string_if_invalid=_SENTINEL, autoescape=False, builtins=["django.templatetags.i18n"])


@cache
def engine(autoescape: bool) -> Engine:
    return Engine(
        dirs=[str(settings.BASE_DIR / "templates")],
        autoescape=autoescape,
        string_if_invalid=_SENTINEL,
        libraries={"i18n": "django.templatetags.i18n"},
        builtins=["django.templatetags.i18n"],
    )


def language_of(log: NotificationLog) -> str:
    language = log.attribution.client.language if log.audience == Audience.CLIENT else ""
    return language if language in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


def format_datetime(value: datetime, language: str, *, short: bool = False) -> str:
    """The date in words: "mardi 1 décembre 2026 à 09h30", "Tuesday 1 December 2026, 09:30".

    ``short`` drops weekday and year (for SMS): "1 décembre à 09h30", "1 December, 09:30".
    """
    patterns = SHORT_DATETIME_FORMATS if short else DATETIME_FORMATS
    with translation.override(language):
        return formats.date_format(timezone.localtime(value), patterns.get(language, patterns["en"]))


def format_duration(value: timedelta, language: str) -> str:
    """A readable positive duration: "2 jours 3 h", "1 h 05 min", "12 min"."""
    words = DURATION_WORDS.get(language, DURATION_WORDS["en"])
    minutes = max(0, int(value.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        day = words["day"][0 if days == 1 else 1]
        return f"{days} {day} {hours} {words['hour']}" if hours else f"{days} {day}"
    if hours:
        return f"{hours} {words['hour']} {minutes:02d} {words['minute']}" if minutes else f"{hours} {words['hour']}"
    return f"{minutes} {words['minute']}"


def context_for(log: NotificationLog, *, now: datetime, language: str) -> dict:
    attribution = log.attribution
    client = attribution.client
    due = attribution.date_retour_prevue
    staff = attribution.created_by
    previous = log.previous_due
    # Names and codes on one line whatever a row saved before the rule holds: a line break
    # in them would cut the email subject and start fake header lines in the text.
    return {
        "language": language,
        "organisation": one_line(settings.ORGANISATION_NAME),
        "reply_to": one_line(settings.ORGANISATION_REPLY_TO),
        # Where and when to bring items back, whom to call: each shown only when set.
        "return_desk": one_line(settings.ORGANISATION_RETURN_DESK),
        "opening_hours": one_line(settings.ORGANISATION_OPENING_HOURS),
        "contact_phone": one_line(settings.ORGANISATION_CONTACT_PHONE),
        "contact_email": one_line(settings.ORGANISATION_CONTACT_EMAIL),
        "client_name": one_line(client.name),
        "client_organisation": one_line(client.organisation),
        "client_email": one_line(client.email),
        "client_phone": one_line(str(client.phone or "")),
        "staff_name": one_line(staff.get_full_name() or staff.get_username()) if staff else "",
        "loan_url": f"{settings.PUBLIC_BASE_URL}{reverse('loan_detail', args=[attribution.pk])}"
        if attribution.pk
        else "",
        **loan_facts(attribution, now=now, language=language),
        "due_short": format_datetime(due, language, short=True),
        "previous_due": format_datetime(previous, language) if previous else "",
        "previous_due_short": format_datetime(previous, language, short=True) if previous else "",
        "niveau_escalade": log.niveau_escalade,
        "public_url": settings.PUBLIC_BASE_URL,
        "borrower_url": borrower_url_of(log),
        **refusal_of(log, language),
        "reply_kind": reply_kind(log),
    }


def borrower_url_of(log: NotificationLog) -> str:
    """The borrower's personal page (`assets.borrower_links`); none in staff copies or for an unsaved sample."""
    if log.audience != Audience.CLIENT or log.attribution.pk is None:
        return ""
    return borrower_links.borrower_url(log.attribution)


def refusal_of(log: NotificationLog, language: str) -> dict:
    """What a PROLONGATION_REFUSEE message says: the reason and the time asked for, from the latest refusal."""
    if log.type_notification != TypeNotification.PROLONGATION_REFUSEE:
        return {"refusal_reason": "", "requested_due": ""}
    refusal = None
    if log.attribution.pk is not None:
        refusal = (
            ExtensionRequest.objects.filter(attribution_id=log.attribution.pk, statut=ExtensionRequest.Statut.REFUSEE)
            .order_by("-decided_at", "-id")
            .first()
        )
    if refusal is None:  # a sample, to check a template or an override
        return {"refusal_reason": gettext("The material is booked right after you."), "requested_due": ""}
    return {
        "refusal_reason": one_line(refusal.reason),
        "requested_due": format_datetime(refusal.requested_due, language),
    }


def reply_kind(log: NotificationLog) -> str:
    """What a REPONSE row answers (an `InboundMessage.Kind`); "" for every other type."""
    if log.type_notification != TypeNotification.REPONSE:
        return ""
    inbound = InboundMessage.objects.filter(reply_id=log.pk).values_list("kind", flat=True).first() if log.pk else None
    return inbound or InboundMessage.Kind.TEXT


def _check(rendered: str, where: str) -> str:
    missing = _SENTINEL_RE.search(rendered)
    if missing:
        raise MissingVariable(f"Message template {where} uses an unknown variable “{missing.group(1)}”.")
    return rendered


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def template_name(log: NotificationLog, language: str, suffix: str) -> str:
    stem = log.type_notification.lower()
    if log.audience != Audience.CLIENT:
        stem = f"{stem}_staff"
    return f"notifications/{log.canal.lower()}/{language}/{stem}.{suffix}"


def with_override_flag(queryset):
    """Load rows with ``has_override`` / ``has_experiment``: whether any override / running experiment exists
    for their type and channel.

    `find_override` and `variant_for` then skip their query for rows that have none
    (most rows, in most deployments).
    """
    return queryset.annotate(
        has_override=Exists(
            MessageOverride.objects.filter(type_notification=OuterRef("type_notification"), canal=OuterRef("canal"))
        ),
        has_experiment=Exists(
            Experiment.objects.filter(
                status=Experiment.Status.RUNNING,
                type_notification=OuterRef("type_notification"),
                canal=OuterRef("canal"),
            )
        ),
    )


def find_override(log: NotificationLog, language: str) -> MessageOverride | None:
    if log.audience != Audience.CLIENT:
        return None
    if getattr(log, "has_override", True) is False:
        return None  # loaded through `with_override_flag`: none exists for this type and channel
    return MessageOverride.objects.filter(
        type_notification=log.type_notification, canal=log.canal, language=language
    ).first()


def variant_for(log: NotificationLog, language: str) -> Variant | None:
    """The experiment variant this row's borrower message uses (`notifications.experiments`), or None."""
    if log.audience != Audience.CLIENT or log.attribution_id is None:
        return None
    if getattr(log, "has_experiment", True) is False:
        return None  # loaded through `with_override_flag`: no experiment runs on this type and channel
    variants = list(
        Variant.objects.filter(
            experiment__status=Experiment.Status.RUNNING,
            experiment__type_notification=log.type_notification,
            experiment__canal=log.canal,
            experiment__language=language,
        )
        .select_related("experiment")
        .order_by("id")
    )
    return assign(variants, variants[0].experiment_id, log.attribution_id) if variants else None


def render(
    log: NotificationLog, *, now: datetime, language: str | None = None, override: MessageOverride | None = None
) -> Message:
    """The message for ``log`` in its recipient's language.

    Raises `MissingVariable` for an unknown variable and `BrokenTemplate` for a template
    file that is missing or does not parse (an override's syntax errors surface as
    `TemplateSyntaxError`, for the admin form).
    """
    try:
        return _render(log, now=now, language=language, override=override)
    except (TemplateDoesNotExist, TemplateSyntaxError) as error:
        if override is not None:
            raise
        raise BrokenTemplate(f"Message template error: {error.__class__.__name__}: {error}") from error


def _render(log: NotificationLog, *, now: datetime, language: str | None, override: MessageOverride | None) -> Message:
    language = language or language_of(log)
    variant = None
    if override is None:
        variant = variant_for(log, language)
        override = variant.as_override() if variant else find_override(log, language)
    context = context_for(log, now=now, language=language)
    text_engine, html_engine = engine(False), engine(True)
    with translation.override(language):
        if override is not None:
            where = f"override “{override}”"
            check_override_source(override.body)
            check_override_source(override.subject)
            body = _check(
                override_engine().from_string(override.body).render(Context(context, autoescape=False)), where
            )
            subject = _check(
                override_engine().from_string(override.subject).render(Context(context, autoescape=False)), where
            )
            html = ""
            if log.canal == Canal.EMAIL:
                html = html_engine.get_template("notifications/email/override.html").render(
                    Context({**context, "body_text": _tidy(body), "subject": one_line(subject)}, autoescape=True)
                )
        else:
            name = template_name(log, language, "txt")
            body = _check(text_engine.get_template(name).render(Context(context, autoescape=False)), name)
            subject, html = "", ""
            if log.canal == Canal.EMAIL:
                subject, _, body = body.strip().partition("\n")
                html_name = template_name(log, language, "html")
                html = _check(
                    html_engine.get_template(html_name).render(
                        Context({**context, "subject": one_line(subject)}, autoescape=True)
                    ),
                    html_name,
                )
    delay = context["late_by"] if context["is_late"] else context["remaining"]
    values = {
        "client_name": context["client_name"],
        "materiel": f"{context['materiel_name']} ({context['materiel_code']})",
        "due": context["due"],
        "delay": delay,
        "organisation": context["organisation"],
        "where": where_of(context),
        "previous_due": context["previous_due"] or context["due"],
    }
    return Message(
        body=_tidy(body),
        subject=one_line(subject),
        html=html,
        language=language,
        content_variables={str(i): values[key] for i, key in enumerate(CONTENT_VARIABLES, start=1)},
        variant_id=variant.pk if variant else None,
        unsubscribe_url=borrower_links.unsubscribe_url(log.attribution) if context["borrower_url"] else "",
    )


def _group_templates(log: NotificationLog, language: str, suffix: str) -> list[str]:
    folder = f"notifications/{log.canal.lower()}/{language}"
    return [f"{folder}/{log.type_notification.lower()}_group.{suffix}", f"{folder}/group.{suffix}"]


def item_of(log: NotificationLog, *, now: datetime, language: str) -> dict:
    """One line of a group message: the facts of one row's loan."""
    return loan_facts(log.attribution, now=now, language=language)


def loan_facts(attribution: Attribution, *, now: datetime, language: str) -> dict:
    """The item and its dates, as every message says them (one loan's message, or one line of a group)."""
    late = elapsed(attribution.date_retour_prevue, now)
    return {
        "materiel_code": one_line(attribution.materiel.code),
        "materiel_name": one_line(attribution.materiel.name),
        "start": format_datetime(attribution.date_debut, language),
        "due": format_datetime(attribution.date_retour_prevue, language),
        "returned_at": format_datetime(attribution.date_retour_effective, language)
        if attribution.date_retour_effective
        else "",
        "is_late": late > timedelta(0),
        "remaining": format_duration(-late, language),
        "late_by": format_duration(late, language),
    }


def where_of(context: dict) -> str:
    """The return desk and hours for a WhatsApp template variable; never empty (WhatsApp refuses that)."""
    where = ", ".join(part for part in (context["return_desk"], context["opening_hours"]) if part)
    return where or context["organisation"]


def render_group(group: list[NotificationLog], *, now: datetime) -> Message:
    """One message for the rows of ``group`` (one borrower, type and channel): the items listed.

    The group's first row gives the language and the borrower; overrides and experiments
    apply to single-item messages only. Raises like `render`.
    """
    log = group[0]
    language = language_of(log)
    items = [item_of(row, now=now, language=language) for row in group]
    dues = {row.attribution.date_retour_prevue for row in group}
    context = {
        **context_for(log, now=now, language=language),
        "type": log.type_notification,
        "items": items,
        "count": len(items),
        # Shown once instead of per item when every item is due at the same time.
        "same_due": items[0]["due"] if len(dues) == 1 else "",
    }
    try:
        with translation.override(language):
            body = engine(False).select_template(_group_templates(log, language, "txt"))
            text = _check(body.render(Context(context, autoescape=False)), str(body.origin.template_name))
            subject, html = "", ""
            if log.canal == Canal.EMAIL:
                subject, _, text = text.strip().partition("\n")
                page = engine(True).select_template(_group_templates(log, language, "html"))
                html = _check(
                    page.render(Context({**context, "subject": one_line(subject)}, autoescape=True)),
                    str(page.origin.template_name),
                )
    except (TemplateDoesNotExist, TemplateSyntaxError) as error:
        raise BrokenTemplate(f"Message template error: {error.__class__.__name__}: {error}") from error
    first_due = min(dues)
    late = elapsed(first_due, now)
    values = {
        "client_name": context["client_name"],
        # One line: WhatsApp refuses line breaks in a template variable.
        "materiel": ", ".join(f"{item['materiel_name']} ({item['materiel_code']})" for item in items),
        "due": format_datetime(first_due, language),
        "delay": format_duration(late if late > timedelta(0) else -late, language),
        "organisation": context["organisation"],
        "where": where_of(context),
        "previous_due": context["previous_due"] or format_datetime(first_due, language),
    }
    return Message(
        body=_tidy(text),
        subject=one_line(subject),
        html=html,
        language=language,
        content_variables={str(i): values[key] for i, key in enumerate(CONTENT_VARIABLES, start=1)},
        log_ids=tuple(row.pk for row in group),
    )


def sample_log(type_notification: str, canal: str, language: str, *, now: datetime) -> NotificationLog:
    """An unsaved row with believable data, to check a template or an override renders."""
    client = Client(name="Camille Martin", email="camille.martin@example.org", phone="+33612345678", language=language)
    materiel = Materiel(code="CAM-042", name="Caméra 4K")
    start = now - timedelta(hours=20)
    due = now + timedelta(hours=2)
    returned = now if type_notification == TypeNotification.RESTITUTION else None
    if type_notification == TypeNotification.RETARD:
        due = now - timedelta(hours=3)
    previous = due - timedelta(days=2) if type_notification == TypeNotification.PROLONGATION else None
    attribution = Attribution(
        pk=42,  # never saved: the staff copy's loan link needs a number
        client=client,
        materiel=materiel,
        date_debut=start,
        date_retour_prevue=due,
        date_retour_effective=returned,
    )
    return NotificationLog(
        attribution=attribution,
        type_notification=type_notification,
        canal=canal,
        date_scheduled=now,
        previous_due=previous,
    )


# GSM 03.38: the basic set (one septet each) and its extension table (two: escape + character).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsSize:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def sms_size(text: str) -> SmsSize:
    """How an SMS of ``text`` travels: GSM-7 when every character is in GSM 03.38, else UCS-2.

    One segment holds 160 septets or 70 UCS-2 units; a longer message is split into parts of 153 / 67
    (the rest carries the concatenation header). One non-GSM character (ê, ’, an emoji) makes it all UCS-2.
    """
    if all(char in GSM7_BASIC or char in GSM7_EXTENDED for char in text):
        units = sum(2 if char in GSM7_EXTENDED else 1 for char in text)
        single, part, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, part, encoding = 70, 67, "UCS-2"
    segments = 1 if units <= single else -(-units // part)
    return SmsSize(encoding=encoding, units=units, segments=segments)
