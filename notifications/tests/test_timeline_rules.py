"""The ideal send times and the quiet-hours rule, as pure functions (DESIGN's table, in Europe/Paris)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from assets.models import classify_duree
from notifications.timeline import channel_time, overdue_times, reminder_times

from .beat import paris


def reminders(start, due):
    return reminder_times(start, due, classify_duree(start, due))


def test_short_and_medium_loans_get_one_reminder_two_real_hours_before_due_even_across_dst():
    assert reminders(paris(2026, 3, 10, 14, 0), paris(2026, 3, 10, 17, 0)) == [("RAPPEL_2H", paris(2026, 3, 10, 15, 0))]
    # Clocks jump from 02:00 to 03:00 on 29 March: 2 real hours before 04:00 is 01:00.
    assert reminders(paris(2026, 3, 28, 20, 0), paris(2026, 3, 29, 4, 0)) == [("RAPPEL_2H", paris(2026, 3, 29, 1, 0))]


def test_no_reminder_before_the_loan_started():
    assert reminders(paris(2026, 3, 10, 14, 0), paris(2026, 3, 10, 15, 30)) == []
    # A 30-hour loan: J-2 would be before the start, J-1 and FINAL are not.
    start, due = paris(2026, 3, 10, 7, 0), paris(2026, 3, 11, 15, 0)
    assert [t for t, _ in reminders(start, due)] == ["RAPPEL_J_MOINS_1", "RAPPEL_FINAL"]


def test_long_loans_get_j2_j1_and_final_at_0800_local_across_dst():
    start, due = paris(2026, 3, 26, 10, 0), paris(2026, 3, 30, 18, 0)
    assert reminders(start, due) == [
        ("RAPPEL_J_MOINS_2", paris(2026, 3, 28, 8, 0)),
        ("RAPPEL_J_MOINS_1", paris(2026, 3, 29, 8, 0)),
        ("RAPPEL_FINAL", paris(2026, 3, 30, 8, 0)),
    ]


def test_the_final_reminder_of_a_loan_due_before_0800_goes_at_the_start_of_the_due_day():
    start, due = paris(2026, 3, 2, 10, 0), paris(2026, 3, 6, 7, 30)
    assert reminders(start, due)[-1] == ("RAPPEL_FINAL", paris(2026, 3, 6, 0, 0))


def test_the_overdue_ladder_follows_the_settings(settings):
    settings.OVERDUE_GRACE_MINUTES = 15
    settings.OVERDUE_REPEAT_HOURS = 24
    settings.OVERDUE_MAX_LEVELS = 3
    due = paris(2026, 3, 28, 18, 0)
    assert overdue_times(due) == [
        (1, paris(2026, 3, 28, 18, 15)),
        (2, paris(2026, 3, 29, 19, 15)),  # 24 real hours later: the clocks moved forward that night
        (3, paris(2026, 3, 30, 19, 15)),
    ]
    settings.OVERDUE_MAX_LEVELS = 1
    assert len(overdue_times(due)) == 1


@pytest.mark.parametrize(
    "type_, canal, ideal, start, due, expected",
    [
        # WhatsApp at 22:00 waits for 08:00 when the loan is still out then.
        ("RAPPEL_2H", "WHATSAPP", (3, 10, 22, 0), (3, 10, 14, 0), (3, 11, 12, 0), (3, 11, 8, 0)),
        # ...but goes just before 21:00 when 08:00 would be after the due time.
        ("RAPPEL_2H", "WHATSAPP", (3, 10, 22, 0), (3, 10, 14, 0), (3, 11, 0, 0), (3, 10, 20, 55)),
        # ...and is skipped when that is before the loan started.
        ("RAPPEL_2H", "WHATSAPP", (3, 10, 22, 30), (3, 10, 20, 58), (3, 11, 0, 30), None),
        # Email has no quiet hours by default.
        ("RAPPEL_2H", "EMAIL", (3, 10, 22, 0), (3, 10, 14, 0), (3, 11, 0, 0), (3, 10, 22, 0)),
        # Overdue alerts wait for the morning too.
        ("RETARD", "WHATSAPP", (3, 10, 23, 15), (3, 10, 14, 0), (3, 10, 23, 0), (3, 11, 8, 0)),
        # Answers to a staff action go at once.
        ("CREATION", "WHATSAPP", (3, 10, 23, 0), (3, 10, 23, 0), (3, 11, 1, 0), (3, 10, 23, 0)),
        ("RESTITUTION", "SMS", (3, 11, 6, 0), (3, 10, 23, 0), (3, 11, 9, 0), (3, 11, 6, 0)),
    ],
)
def test_quiet_hours(type_, canal, ideal, start, due, expected):
    def at(parts):
        return paris(2026, *parts)

    got = channel_time(type_, canal, at(ideal), date_debut=at(start), date_retour_prevue=at(due))
    assert got == (at(expected) if expected else None)


def test_quiet_hours_that_do_not_cross_midnight(settings):
    settings.QUIET_HOURS = {"EMAIL": "12:00-14:00"}
    got = channel_time(
        "RAPPEL_2H",
        "EMAIL",
        paris(2026, 3, 10, 12, 30),
        date_debut=paris(2026, 3, 10, 9, 0),
        date_retour_prevue=paris(2026, 3, 10, 14, 30),
    )
    assert got == paris(2026, 3, 10, 14, 0)


def test_a_malformed_quiet_hours_setting_says_what_is_wrong(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.QUIET_HOURS = {"WHATSAPP": "21h-8h"}
    with pytest.raises(ImproperlyConfigured, match="HH:MM-HH:MM"):
        channel_time(
            "RAPPEL_2H",
            "WHATSAPP",
            paris(2026, 3, 10, 22, 0),
            date_debut=paris(2026, 3, 10, 9, 0),
            date_retour_prevue=paris(2026, 3, 11, 9, 0) + timedelta(0),
        )


@pytest.mark.parametrize(
    "kind, sent_at, lapsed",
    [
        ("RAPPEL_J_MOINS_1", paris(2026, 3, 29, 8, 0), ""),  # its day (the DST day itself)
        ("RAPPEL_J_MOINS_1", paris(2026, 3, 29, 23, 59), ""),  # late, still the day before
        ("RAPPEL_J_MOINS_1", paris(2026, 3, 30, 0, 1), "PAST_ITS_DAY"),  # "tomorrow" would be today
        ("RAPPEL_J_MOINS_2", paris(2026, 3, 28, 8, 0), ""),
        ("RAPPEL_J_MOINS_2", paris(2026, 3, 29, 8, 0), "PAST_ITS_DAY"),  # J-1 goes out that day
        ("RAPPEL_FINAL", paris(2026, 3, 30, 17, 0), ""),  # the due day's reminder names no other day
        ("RAPPEL_FINAL", paris(2026, 3, 30, 18, 0), "ALREADY_DUE"),
    ],
)
def test_a_reminder_that_names_a_day_is_not_sent_on_another_day(kind, sent_at, lapsed):
    from notifications.timeline import lapse_reason

    due = paris(2026, 3, 30, 18, 0)
    assert lapse_reason(kind, returned=False, due=due, duree="LONG", now=sent_at) == lapsed
