"""A simulated week of lending checked against an independent oracle.

GIVEN a few hundred random loans of every class over a week that includes the
change to summer time — some returned early, some late, some extended, some never —
with borrowers on email only or on email and WhatsApp (a local fake of Twilio's API),
WHEN the desk actions happen at their times and beat's tasks run at every tick,
THEN every notification the oracle expects is sent once, between its ideal time and two
minutes after it, on each channel; nothing unexpected is sent, nothing twice, no
reminder or alert after the return, no pre-due reminder after the due time.

With the learned send time on, the learner learns from the week's own reminders
(`SEND_TIME_MIN_REMINDERS` at its default of 30 is reached on the first days), so some
reminders leave the rule's time. The oracle then takes the time the product stored for such a
reminder (its `SendTimeChoice`) as its ideal time, after checking that time against the bounds
the learner promises, and holds it to the same promise.

The oracle below is written from the README's table, on its own: it shares no code
with `notifications.timeline`, the planner or `notifications.send_time`.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

import pytest
from werkzeug import Response

from assets import services
from assets.tests.factories import ClientFactory, MaterielFactory, StaffFactory
from radgestmat.testing.twilio import MESSAGES_PATH

from .beat import PARIS, Beat, paris
from .conftest import consent_to_whatsapp

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("send_time_learning")]

WEEK_START = paris(2026, 3, 23, 0, 0)  # Monday; clocks go forward on Sunday 29 March at 02:00
WEEK_END = paris(2026, 3, 30, 12, 0)
LOANS = int(os.environ.get("SIM_LOANS", "300"))
WINDOW = timedelta(minutes=2)
# Between an ideal time and the tick that sends it lies up to a minute: an action or the due
# time falling in that minute may legitimately cancel it. Those are "may be sent".
TICK = timedelta(minutes=1)
# The bounds of a learned time, from the README (settings SEND_TIME_WINDOW, SEND_TIME_LEAD_MINUTES).
LEARNED_WINDOW = (time(8, 0), time(20, 0))
LEARNED_LEADS = (timedelta(minutes=60), timedelta(minutes=240))
LONG_REMINDERS = ("RAPPEL_J_MOINS_2", "RAPPEL_J_MOINS_1", "RAPPEL_FINAL")


# --- The oracle -------------------------------------------------------------------------


def real_hours(start: datetime, end: datetime) -> float:
    return (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() / 3600


def loan_class(start: datetime, due: datetime) -> str:
    hours = real_hours(start, due)
    return "COURT" if hours < 4 else "MOYEN" if hours <= 24 else "LONG"


def local_at(day, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=PARIS)


def is_quiet(moment: datetime) -> bool:
    hour = moment.astimezone(PARIS).hour
    return hour >= 21 or hour < 8


def next_0800(moment: datetime) -> datetime:
    local = moment.astimezone(PARIS)
    day = local.date() if local.hour < 8 else local.date() + timedelta(days=1)
    return local_at(day, 8)


def previous_2100(moment: datetime) -> datetime:
    local = moment.astimezone(PARIS)
    day = local.date() if local.hour >= 21 else local.date() - timedelta(days=1)
    return local_at(day, 21)


def ideal_reminders(start: datetime, due: datetime) -> list[tuple[str, datetime]]:
    kind = loan_class(start, due)
    if kind in ("COURT", "MOYEN"):
        candidates = [("RAPPEL_2H", due.astimezone(UTC) - timedelta(hours=2))]
    else:
        due_day = due.astimezone(PARIS).date()
        final = local_at(due_day, 8) if due.astimezone(PARIS).time() > time(8, 0) else local_at(due_day, 0)
        candidates = [
            ("RAPPEL_J_MOINS_2", local_at(due_day - timedelta(days=2), 8)),
            ("RAPPEL_J_MOINS_1", local_at(due_day - timedelta(days=1), 8)),
            ("RAPPEL_FINAL", final),
        ]
    return [(kind_, when) for kind_, when in candidates if when >= start]


def whatsapp_time(kind: str, ideal: datetime, start: datetime, due: datetime) -> datetime | None:
    if kind in ("CREATION", "RESTITUTION") or not is_quiet(ideal):
        return ideal
    morning = next_0800(ideal)
    if kind in ("RETARD", "PROLONGATION") or morning < due:
        return morning
    evening = previous_2100(ideal) - timedelta(minutes=5)
    return evening if evening >= start else None


@dataclass(frozen=True)
class StoredChoice:
    """The product's decision for one reminder of a loan (a `SendTimeChoice` row), as read from the database."""

    rule_at: datetime
    chosen_at: datetime
    learned: bool
    decided_at: datetime


@dataclass
class Loan:
    start: datetime
    due: datetime
    has_phone: bool
    extensions: list[tuple[datetime, datetime]] = field(default_factory=list)  # (when, new due)
    returned: datetime | None = None
    pk: int | None = None
    # Per due-date segment (the first, then one per extension): reminder type → the stored choice.
    choices: list[dict[str, StoredChoice]] = field(default_factory=list)


def learned_bound_problems(kind: str, choice: StoredChoice, start: datetime, due: datetime) -> list[str]:
    """How a learned time breaks the bounds: off the rule's day, quiet, outside the window, too close to the due time."""
    chosen = choice.chosen_at.astimezone(PARIS)
    problems = []
    if is_quiet(chosen):
        problems.append("in quiet hours")
    if not LEARNED_WINDOW[0] <= chosen.time() < LEARNED_WINDOW[1]:
        problems.append("outside the window")
    if chosen < max(start, choice.decided_at):
        # A choice kept across an extension (same rule time) may lie before it: it was decided earlier.
        problems.append("before the loan started or before it was decided")
    if chosen > due.astimezone(UTC) - LEARNED_LEADS[0]:
        problems.append("less than the shortest lead before the due time")
    if kind in LONG_REMINDERS:
        if chosen.date() != choice.rule_at.astimezone(PARIS).date():
            problems.append("not on the rule's day")
    elif chosen < due.astimezone(UTC) - LEARNED_LEADS[1]:
        problems.append("earlier than the longest lead before the due time")
    return problems


@dataclass(frozen=True)
class Expected:
    key: tuple  # (loan pk, type, canal, audience, level)
    ideal: datetime
    optional: bool
    learned: bool = False  # the ideal time is a learned one the product chose


def expectations(loan: Loan, week_end: datetime = WEEK_END, problems: list[str] | None = None) -> list[Expected]:
    """What ``loan`` should send; a learned time breaking its bounds is added to ``problems``."""
    out: list[Expected] = []
    problems = [] if problems is None else problems
    client_channels = ["EMAIL"] + (["WHATSAPP"] if loan.has_phone else [])

    def add(kind, canal, audience, level, when, *, until, must_precede=None, learned=False):
        """Expected when ``when`` is before ``until`` (and before ``must_precede``) and seen by the end of the week."""
        if when is None or when >= until or when > week_end - WINDOW:
            return
        cutoff = min(until, must_precede) if must_precede else until
        if must_precede and when >= must_precede:
            return
        out.append(
            Expected((loan.pk, kind, canal, audience, level), when, optional=when > cutoff - TICK, learned=learned)
        )

    for canal in client_channels:
        add("CREATION", canal, "CLIENT", 0, loan.start, until=week_end)
        if loan.returned:
            add("RESTITUTION", canal, "CLIENT", 0, loan.returned, until=week_end)
    # One extension notice per extension, unless the loan comes back or is extended again before it goes out.
    for level, (extended_at, _new_due) in enumerate(loan.extensions, start=1):
        following = loan.extensions[level][0] if level < len(loan.extensions) else None
        for canal in client_channels:
            at = extended_at if canal == "EMAIL" else whatsapp_time("PROLONGATION", extended_at, loan.start, loan.due)
            add("PROLONGATION", canal, "CLIENT", level, at, until=loan.returned or week_end, must_precede=following)

    segments = [(loan.start, loan.due)] + list(loan.extensions)
    for index, (since, due) in enumerate(segments):
        until = segments[index + 1][0] if index + 1 < len(segments) else (loan.returned or week_end)
        stored = loan.choices[index] if index < len(loan.choices) else {}
        for kind, ideal in ideal_reminders(loan.start, due):
            choice = stored.get(kind)
            learned = choice is not None and choice.rule_at == ideal and choice.learned
            if learned:
                assert choice is not None
                broken = learned_bound_problems(kind, choice, loan.start, due)
                problems.extend(
                    f"{(loan.pk, kind)}: learned {choice.chosen_at.astimezone(PARIS)} {why}" for why in broken
                )
                ideal = choice.chosen_at
            for canal in client_channels:
                when = ideal if canal == "EMAIL" else whatsapp_time(kind, ideal, loan.start, due)
                if when is not None and when >= since:
                    add(kind, canal, "CLIENT", 0, when, until=until, must_precede=due, learned=learned)
        for level in (1, 2, 3):
            ideal = due.astimezone(UTC) + timedelta(minutes=15) + (level - 1) * timedelta(hours=24)
            if ideal < since:
                continue
            for canal in client_channels:
                when = ideal if canal == "EMAIL" else whatsapp_time("RETARD", ideal, loan.start, due)
                add("RETARD", canal, "CLIENT", level, when, until=until)
            if level >= 2:
                add("RETARD", "EMAIL", "STAFF", level, ideal, until=until)
                add("RETARD", "EMAIL", "MANAGER", level, ideal, until=until)
    return out


# --- The week ------------------------------------------------------------------------------


def random_loans(
    rng: random.Random,
    week_start: datetime = WEEK_START,
    count: int = LOANS,
    week_end: datetime = WEEK_END,
    starts_within: timedelta = timedelta(days=6),
) -> list[Loan]:
    """``count`` loans starting within ``starts_within`` of ``week_start``; their fates, before ``week_end``."""
    loans = []
    for _ in range(count):
        start = week_start + timedelta(seconds=rng.randrange(int(starts_within.total_seconds())))
        kind = rng.choice(["COURT", "COURT", "MOYEN", "MOYEN", "LONG", "LONG", "LONG"])
        hours = {"COURT": rng.uniform(0.5, 3.9), "MOYEN": rng.uniform(4.1, 23.9), "LONG": rng.uniform(24.5, 100)}[kind]
        loan = Loan(start=start, due=start + timedelta(hours=hours), has_phone=rng.random() < 0.5)
        fate = rng.random()
        if fate < 0.2:
            when = loan.start + (loan.due - loan.start) * rng.uniform(0.1, 0.9)
            if when < week_end:
                loan.extensions.append((when, loan.due + timedelta(hours=rng.uniform(1, 48))))
            if loan.extensions and rng.random() < 0.5:
                loan.returned = loan.extensions[-1][1] + timedelta(hours=rng.uniform(-3, 30))
        elif fate < 0.5:
            loan.returned = loan.start + (loan.due - loan.start) * rng.uniform(0.05, 0.95)
        elif fate < 0.75:
            loan.returned = loan.due + timedelta(hours=rng.uniform(0.1, 50))
        loan.returned = loan.returned if loan.returned and loan.returned < week_end else None
        loans.append(loan)
    return loans


@pytest.fixture
def twilio_accepting_everything(fake_twilio, httpserver):
    counter = iter(range(1, 10**6))

    def accept(request):
        import json

        sid = f"SM{next(counter):032d}"
        return Response(json.dumps({"sid": sid, "status": "queued"}), status=201, content_type="application/json")

    httpserver.expect_request(MESSAGES_PATH, method="POST").respond_with_handler(accept)
    return httpserver


def test_a_simulated_week_keeps_the_timing_promise(
    settings, send_time_learning, twilio_accepting_everything, mailoutbox
):
    settings.OVERDUE_MANAGER_EMAIL = "manager@example.org"
    settings.OVERDUE_GRACE_MINUTES, settings.OVERDUE_REPEAT_HOURS, settings.OVERDUE_MAX_LEVELS = 15, 24, 3
    settings.QUIET_HOURS = {"WHATSAPP": "21:00-08:00", "SMS": "21:00-08:00", "EMAIL": ""}
    if send_time_learning:
        # Learn from the week's own reminders: the default threshold, reached on the first days.
        settings.SEND_TIME_MIN_REMINDERS = 30
    rng = random.Random(20260329)
    loans = random_loans(rng)
    beat = Beat(WEEK_START)
    try:
        live_the_week(beat, loans)
        beat.run_until(WEEK_END)
    finally:
        beat.stop()
    problems = promise_problems(loans, beat.sent, WEEK_END)
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} problems)"
    assert_every_kind_went_out(beat.sent, mailoutbox, twilio_accepting_everything)
    moved = learned_sends(loans, beat.sent, WEEK_END)
    print(f"sends at a learned time: {moved}")  # noqa: T201  (the count docs/experiments.md quotes, shown with -s)
    if send_time_learning:
        assert moved >= 20, f"only {moved} sends at a learned time: is the learner running?"
    else:
        assert moved == 0


def live_the_week(beat, loans: list[Loan]) -> None:
    """The desk actions of ``loans`` at their times (lend, extend, return), beat running in between."""
    lender = StaffFactory(email="lender@example.org")
    events: list[tuple[datetime, int, str, datetime | None]] = []
    for number, loan in enumerate(loans):
        events.append((loan.start, number, "lend", None))
        for when, extended_due in loan.extensions:
            events.append((when, number, "extend", extended_due))
        if loan.returned:
            events.append((loan.returned, number, "return", None))
    records = {}
    for when, number, action, new_due in sorted(events, key=lambda event: (event[0], event[1])):
        beat.run_until(when)
        loan = loans[number]
        if action == "lend":
            client = ClientFactory(phone="+33612345678" if loan.has_phone else "")
            if loan.has_phone:
                consent_to_whatsapp(client)
            records[number] = beat.act(
                services.lend, materiel=MaterielFactory(), client=client, due=loan.due, now=when, by=lender
            )
            loan.pk = records[number].pk
        elif action == "extend":
            assert loan.pk is not None
            loan.choices.append(stored_choices([loan.pk]).get(loan.pk, {}))  # the decisions of the due date ending now
            beat.act(services.extend, records[number], new_due=new_due, now=when)
        else:
            beat.act(services.record_return, records[number], now=when)


def stored_choices(pks) -> dict[int, dict[str, StoredChoice]]:
    """The send-time decisions the product stored for the loans ``pks`` (the latest per reminder type)."""
    from notifications.models import SendTimeChoice

    found: dict[int, dict[str, StoredChoice]] = defaultdict(dict)
    for row in SendTimeChoice.objects.filter(attribution_id__in=pks):
        found[row.attribution_id][row.type_notification] = StoredChoice(
            row.rule_at, row.chosen_at, row.source == SendTimeChoice.Source.LEARNED, row.decided_at
        )
    return found


def read_last_choices(loans: list[Loan]) -> None:
    """Once the week is over: the decisions stored for each loan's last due date."""
    final = stored_choices([loan.pk for loan in loans if loan.pk is not None])
    for loan in loans:
        if loan.pk is not None and len(loan.choices) == len(loan.extensions):
            loan.choices.append(final.get(loan.pk, {}))


def promise_problems(loans: list[Loan], sent_rows, week_end: datetime) -> list[str]:
    """Every way the sends broke the promise: unexpected, late, twice, never sent, after the return; learned times out of bounds."""
    read_last_choices(loans)
    expected = defaultdict(list)
    problems: list[str] = []
    for loan in loans:
        for item in expectations(loan, week_end, problems):
            expected[item.key].append(item)
    sent = defaultdict(list)
    for row in sent_rows:
        sent[(row.attribution_id, row.type_notification, row.canal, row.audience, row.niveau_escalade)].append(row)

    for key in sorted(set(expected) | set(sent), key=str):
        wanted = sorted(expected.get(key, []), key=lambda item: item.ideal)
        got = sorted(row.date_envoi for row in sent.get(key, []))
        for moment in got:
            match = next((item for item in wanted if item.ideal <= moment <= item.ideal + WINDOW), None)
            if match is None:
                problems.append(f"{key}: sent at {moment.astimezone(PARIS)}, not expected then (expected {wanted})")
            else:
                wanted.remove(match)
        problems.extend(
            f"{key}: expected at {item.ideal.astimezone(PARIS)}, never sent" for item in wanted if not item.optional
        )
    by_pk = {loan.pk: loan for loan in loans}
    for row in sent_rows:
        loan = by_pk[row.attribution_id]
        if (
            row.type_notification not in ("CREATION", "RESTITUTION")
            and loan.returned
            and row.date_envoi > loan.returned
        ):
            problems.append(f"{row}: sent after the return")
    return problems


def lateness_and_extras(loans: list[Loan], sent_rows, week_end: datetime) -> tuple[timedelta, int]:
    """The longest delay of a send after its nearest earlier ideal time, and how many sends of a key exceed what it expects."""
    expected = defaultdict(list)
    for loan in loans:
        for item in expectations(loan, week_end):
            expected[item.key].append(item.ideal)
    sent = defaultdict(list)
    for row in sent_rows:
        sent[(row.attribution_id, row.type_notification, row.canal, row.audience, row.niveau_escalade)].append(
            row.date_envoi
        )
    latest = timedelta(0)
    for key, moments in sent.items():
        for moment in moments:
            earlier = [moment - ideal for ideal in expected.get(key, []) if ideal <= moment]
            latest = max(latest, min(earlier, default=timedelta(0)))
    extras = sum(max(0, len(moments) - len(expected.get(key, []))) for key, moments in sent.items())
    return latest, extras


def learned_sends(loans: list[Loan], sent_rows, week_end: datetime) -> int:
    """How many sends went out at a learned time (within the window after it): the learner really moved reminders."""
    learned = [item for loan in loans for item in expectations(loan, week_end) if item.learned]
    sent = defaultdict(list)
    for row in sent_rows:
        sent[(row.attribution_id, row.type_notification, row.canal, row.audience, row.niveau_escalade)].append(
            row.date_envoi
        )
    return sum(1 for item in learned if any(item.ideal <= moment <= item.ideal + WINDOW for moment in sent[item.key]))


def assert_every_kind_went_out(sent_rows, mailoutbox, twilio) -> None:
    """The week was a real test: every kind of notification went out, on both channels, each message once."""
    kinds = {(row.type_notification, row.canal) for row in sent_rows}
    for kind in (
        "CREATION",
        "RAPPEL_2H",
        "RAPPEL_J_MOINS_2",
        "RAPPEL_J_MOINS_1",
        "RAPPEL_FINAL",
        "RETARD",
        "RESTITUTION",
        "PROLONGATION",
    ):
        assert {(kind, "EMAIL"), (kind, "WHATSAPP")} <= kinds, kind
    assert {row.audience for row in sent_rows} == {"CLIENT", "STAFF", "MANAGER"}
    assert len(mailoutbox) == sum(1 for row in sent_rows if row.canal == "EMAIL")
    assert len(twilio.log) == sum(1 for row in sent_rows if row.canal == "WHATSAPP")
