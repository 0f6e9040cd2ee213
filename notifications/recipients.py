"""Who hears about a loan, on which channels: preferences and routing.

`client_channels` decides it for one client in Python; `client_channel_conditions` is the
same rule in SQL, for the planning jobs that load only the loans lacking a row.
Staff audiences (the lender, the manager) get email only (`audience_address`).
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Field, Q
from django.utils.translation import gettext_lazy as _

from assets.models import Attribution, Client

from . import channels as channel_registry
from .channels import ChannelSpec
from .models import Audience, Canal, NotificationPreferences, TypeNotification

# Which preference flag switches off which reminder. Overdue alerts cannot be switched off.
REMINDER_FLAGS: dict[str, str] = {
    TypeNotification.RAPPEL_2H: "rappel_2h_avant",
    TypeNotification.RAPPEL_J_MOINS_2: "rappel_j_moins_2",
    TypeNotification.RAPPEL_J_MOINS_1: "rappel_j_moins_1",
    TypeNotification.RAPPEL_FINAL: "rappel_final",
}


def preferences_of(client: Client) -> NotificationPreferences:
    """The client's preferences, or the defaults when they have none (never saved)."""
    try:
        return client.notification_preferences
    except NotificationPreferences.DoesNotExist:
        return NotificationPreferences(client=client)


def stop_reminders(client: Client) -> NotificationPreferences:
    """Switch every reminder off for this client (the borrower's "unsubscribe"); overdue alerts stay on."""
    prefs, _created = NotificationPreferences.objects.get_or_create(client=client)
    for flag in REMINDER_FLAGS.values():
        setattr(prefs, flag, False)
    prefs.save(update_fields=[*REMINDER_FLAGS.values(), "updated_at"])
    return prefs


def phone_of(client: Client, prefs: NotificationPreferences) -> str:
    return prefs.phone_number or client.phone


def wants(prefs: NotificationPreferences, type_notification: str) -> bool:
    """Whether this person still wants this type of notification at all."""
    flag = REMINDER_FLAGS.get(type_notification)
    return flag is None or getattr(prefs, flag)


def first_choices() -> list[ChannelSpec]:
    """The channels planned directly (not only as a fallback), phone channels first."""
    return sorted(
        (spec for spec in channel_registry.REGISTRY if not spec.fallback_after),
        key=lambda spec: spec.address != "phone",
    )


def last_resorts() -> list[ChannelSpec]:
    """Where an overdue alert goes when the client switched every channel off: email first."""
    return sorted(
        (spec for spec in channel_registry.REGISTRY if not spec.fallback_after),
        key=lambda spec: spec.address != "email",
    )


def address_of(spec: ChannelSpec, client: Client, prefs: NotificationPreferences) -> str:
    return client.email if spec.address == "email" else phone_of(client, prefs)


# Why a channel does not reach a client (codes; `OBSTACLE_TEXTS` says them to staff).
NOT_CONFIGURED = "not_configured"
NO_ADDRESS = "no_address"
OPTED_OUT = "opted_out"
TYPE_OFF = "type_off"


def obstacle(spec: ChannelSpec, client: Client, prefs: NotificationPreferences) -> str:
    """Why ``spec`` cannot carry this client's messages ("" when it can), the reasons in the order staff fix them."""
    if not spec.is_planned():
        return NOT_CONFIGURED
    if not address_of(spec, client, prefs):
        return NO_ADDRESS
    if not getattr(prefs, spec.preference_flag):
        return OPTED_OUT
    return ""


def client_channels(client: Client, type_notification: str) -> list[str]:
    """The channels a client is told on for one type, from their preferences and contacts.

    SMS is not a first choice: it is the fallback when WhatsApp fails (see `lifecycle.fall_back`).
    An overdue alert goes out even to a client who switched every channel off: by
    email if we have one, else WhatsApp.
    """
    return [reach.canal for reach in channel_reach(client, preferences_of(client), type_notification) if reach.reached]


@dataclass(frozen=True)
class ChannelReach:
    canal: str
    label: str
    reached: bool
    obstacle: str = ""  # why not (or why only as a last resort), a code of `OBSTACLE_TEXTS`
    last_resort: bool = False
    address: str = "email"  # what the channel sends to: "email" or "phone"

    @property
    def reason(self) -> str:
        if not self.obstacle:
            return ""
        if self.obstacle == NO_ADDRESS:
            return str(NO_ADDRESS_TEXTS[self.address])
        return str(OBSTACLE_TEXTS[self.obstacle]) % {"channel": self.label}


OBSTACLE_TEXTS = {
    NOT_CONFIGURED: _("%(channel)s not configured"),
    OPTED_OUT: _("opted out"),
    TYPE_OFF: _("this reminder is switched off"),
}
NO_ADDRESS_TEXTS = {"email": _("no email address"), "phone": _("no phone number")}


def channel_reach(client: Client, prefs: NotificationPreferences, type_notification: str) -> list[ChannelReach]:
    """Each first-choice channel for one type of message to this client: whether it reaches them, and why not."""
    specs = first_choices()
    if not wants(prefs, type_notification):
        return [ChannelReach(spec.canal, str(spec.label), False, TYPE_OFF, address=spec.address) for spec in specs]
    obstacles = {spec.canal: obstacle(spec, client, prefs) for spec in specs}
    reaches = [
        ChannelReach(
            spec.canal, str(spec.label), not obstacles[spec.canal], obstacles[spec.canal], address=spec.address
        )
        for spec in specs
    ]
    if type_notification == TypeNotification.RETARD and not any(r.reached for r in reaches):
        # Overdue alerts go out anyway: by email if we have one, else WhatsApp.
        for spec in last_resorts():
            if obstacles[spec.canal] == OPTED_OUT:
                return [
                    ChannelReach(r.canal, r.label, True, OPTED_OUT, last_resort=True, address=r.address)
                    if r.canal == spec.canal
                    else r
                    for r in reaches
                ]
    return reaches


# The kinds of message a borrower gets, as staff think of them (the reminders are one kind per loan class).
CLIENT_TYPES = (
    TypeNotification.CREATION,
    TypeNotification.RAPPEL_2H,
    TypeNotification.RAPPEL_J_MOINS_2,
    TypeNotification.RAPPEL_J_MOINS_1,
    TypeNotification.RAPPEL_FINAL,
    TypeNotification.RETARD,
    TypeNotification.RESTITUTION,
)


@dataclass(frozen=True)
class Reachability:
    """Which channels reach one client for each kind of message (the client page, the lend form)."""

    rows: list[tuple[str, str, list[ChannelReach]]]  # (type, its label, the channels)

    def channels_for(self, type_notification: str) -> list[ChannelReach]:
        return next(reaches for t, _label, reaches in self.rows if t == type_notification)

    def reached_by(self, type_notification: str) -> list[str]:
        return [r.canal for r in self.channels_for(type_notification) if r.reached]

    @property
    def unreachable(self) -> bool:
        """No confirmation can reach them: the loan would start without a word (overdue alerts may still go)."""
        return not self.reached_by(TypeNotification.CREATION)

    @property
    def silent(self) -> bool:
        """No message of any kind can reach them."""
        return not any(r.reached for _t, _label, reaches in self.rows for r in reaches)

    @property
    def display_rows(self) -> list[tuple[str, str, list[ChannelReach]]]:
        """`rows` for a page: the reminders as one row when they agree, one row in all when every kind agrees."""

        def cells(reaches: list[ChannelReach]) -> list[tuple[bool, str]]:
            return [(r.reached, r.reason) for r in reaches]

        reminders = [row for row in self.rows if row[0] in REMINDER_FLAGS]
        rows = self.rows
        if len({tuple(cells(row[2])) for row in reminders}) == 1:
            first = next(i for i, row in enumerate(rows) if row[0] in REMINDER_FLAGS)
            merged = ("REMINDERS", str(_("Reminders")), reminders[0][2])
            rows = [*rows[:first], merged, *(row for row in rows[first:] if row[0] not in REMINDER_FLAGS)]
        if len({tuple(cells(row[2])) for row in rows}) == 1:
            return [("ALL", str(_("Every message")), rows[0][2])]
        return rows


def reachability(client: Client) -> Reachability:
    prefs = preferences_of(client)
    return Reachability([(t, str(TypeNotification(t).label), channel_reach(client, prefs, t)) for t in CLIENT_TYPES])


def reachable_loans() -> Q:
    """On `Attribution`: the loans whose borrower gets the loan confirmation on some channel (`Reachability`)."""
    return functools.reduce(operator.or_, client_channel_conditions(TypeNotification.CREATION).values(), NEVER)


def client_channel_conditions(type_notification: str) -> dict[str, Q]:
    """`client_channels` in SQL: per channel, the condition on an `Attribution` under which its client gets it.

    The planning jobs use these to load only loans that lack a row; keep them in step with
    `client_channels` (``test_check_selection`` compares the two on every combination).
    """
    prefs = "client__notification_preferences"
    no_prefs = Q(**{f"{prefs}__isnull": True})

    def on_by_default(flag: str) -> bool:
        field = NotificationPreferences._meta.get_field(flag)
        assert isinstance(field, Field)  # a preference flag is a BooleanField, never a relation
        return bool(field.default)

    def switched_on(flag: str) -> Q:
        # A client without preferences has the model's defaults (WhatsApp off, everything else on).
        by_default = no_prefs if on_by_default(flag) else NEVER
        return by_default | Q(**{f"{prefs}__{flag}": True})

    def switched_off(flag: str) -> Q:
        by_default = NEVER if on_by_default(flag) else no_prefs
        return by_default | Q(**{f"{prefs}__{flag}": False})

    reachable = {
        "phone": Q(**{f"{prefs}__phone_number__gt": ""}) | Q(client__phone__gt=""),
        "email": Q(client__email__gt=""),
    }
    unreachable = {
        "phone": (no_prefs | Q(**{f"{prefs}__phone_number": ""})) & Q(client__phone=""),
        "email": Q(client__email=""),
    }

    def on(spec: ChannelSpec) -> Q:
        return switched_on(spec.preference_flag) & reachable[spec.address] if spec.is_planned() else NEVER

    def off(spec: ChannelSpec) -> Q:
        if not spec.is_planned():
            return ~NEVER
        return switched_off(spec.preference_flag) | unreachable[spec.address]

    wanted = switched_on(REMINDER_FLAGS[type_notification]) if type_notification in REMINDER_FLAGS else ~NEVER
    if type_notification != TypeNotification.RETARD:
        return {spec.canal: wanted & on(spec) for spec in first_choices()}
    # An overdue alert falls back to email, else WhatsApp, when the client switched both off.
    conditions = {}
    earlier: list[ChannelSpec] = []
    for spec in last_resorts():
        others_off = functools.reduce(operator.and_, (off(other) for other in first_choices() if other != spec), ~NEVER)
        resort = reachable[spec.address] & others_off
        for before in earlier:
            resort &= unreachable[before.address]
        conditions[spec.canal] = (on(spec) | resort) if spec.is_planned() else NEVER
        earlier.append(spec)
    return {spec.canal: conditions[spec.canal] for spec in first_choices()}


# A condition no row meets (Django turns it into an empty result or drops it from an OR).
NEVER = Q(pk__in=[])


def audience_condition(audience: str) -> Q:
    """`audience_address` in SQL: when a staff audience of a loan gets its (email) overdue alert."""
    if audience == Audience.STAFF:
        return Q(created_by__email__gt="")
    if audience == Audience.MANAGER:
        return ~NEVER if settings.OVERDUE_MANAGER_EMAIL else NEVER
    raise ValueError(audience)


def audience_address(attribution: Attribution, audience: str) -> str:
    """Email address of a staff audience (the lender or the manager); empty when there is none."""
    if audience == Audience.STAFF:
        return attribution.created_by.email if attribution.created_by else ""
    if audience == Audience.MANAGER:
        return settings.OVERDUE_MANAGER_EMAIL
    return ""


def channels_for(attribution: Attribution, type_notification: str, audience: str) -> list[str]:
    """The channels one planned notification goes out on, for any audience."""
    if audience == Audience.CLIENT:
        return client_channels(attribution.client, type_notification)
    return [Canal.EMAIL] if audience_address(attribution, audience) else []
