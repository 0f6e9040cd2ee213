"""Every message of every type, channel and language says what a borrower needs, in words, at the right length.

Rendered with the organisation's practical settings set, at a fixed send time, and checked for: the item's
name before its code, the due date and time in words (English day first), the time left or late by, the return
desk, hours and contact, the borrower's page link, no French agreement on the item, subjects under 60
characters, and SMS that fit one GSM-7 segment.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from notifications import messages
from notifications.messages import render, sample_log, sms_size
from notifications.models import Audience, Canal, TypeNotification

from .beat import paris

pytestmark = pytest.mark.django_db
# Every type about a loan's dates. REPONSE answers what the borrower wrote (notifications.inbound): its own tests.
LOAN_TYPES = [kind for kind in TypeNotification.values if kind != TypeNotification.REPONSE]

# 07:30 on 1 December: due 09:30 the same day (RETARD: 04:30, three hours late).
NOW = paris(2026, 12, 1, 7, 30)
DESK, HOURS, PHONE, MAIL = "Accueil, batiment B", "lun.-ven. 9h-17h", "+33 1 23 45 67 89", "pret@example.org"
BORROWER_URL = "https://pret.example.org/b/Zx81"
# Words that agree with the item's gender or number: wrong for "Batteries" or "une caméra".
AGREEMENT = re.compile(
    r"\b(rendue?s?|rapportée?s?|prêtée?s?|il est|elle est|ils sont|elles sont|la rapporter|les rapporter)\b"
)
WORDS = {
    "fr": {"due": "1 décembre 2026 à 09h30", "due_short": "1 décembre à 09h30", "late_due": "1 décembre à 04h30"},
    "en": {"due": "1 December 2026, 09:30", "due_short": "1 December, 09:30", "late_due": "1 December, 04:30"},
}


@pytest.fixture(autouse=True)
def organisation(settings, monkeypatch):
    # The sample loan is never saved: no personal link unless a test gives one.
    monkeypatch.setattr(messages, "borrower_url_of", lambda log: "")
    settings.ORGANISATION_NAME = "RadGestMat"
    settings.ORGANISATION_RETURN_DESK = DESK
    settings.ORGANISATION_OPENING_HOURS = HOURS
    settings.ORGANISATION_CONTACT_PHONE = PHONE
    settings.ORGANISATION_CONTACT_EMAIL = MAIL
    settings.PUBLIC_BASE_URL = "https://pret.example.org"


def message_of(kind, canal, language, *, audience=Audience.CLIENT, name=None, client=None):
    log = sample_log(kind, canal, language, now=NOW)
    log.audience = audience
    log.niveau_escalade = 2 if kind == TypeNotification.RETARD else 0
    if kind == TypeNotification.RETARD:
        log.attribution.date_retour_prevue = NOW - timedelta(hours=3)
    if name:
        log.attribution.materiel.name = name
    if client:
        log.attribution.client.name = client
    return render(log, now=NOW, language=language)


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("canal", Canal.values)
@pytest.mark.parametrize("kind", LOAN_TYPES)
def test_every_message_says_what_to_bring_back_when_and_where(kind, canal, language):
    message = message_of(kind, canal, language)
    text = f"{message.subject}\\n{message.body}"
    words = WORDS[language]

    assert "@@MISSING" not in text + message.html
    # The item's name first, its code second.
    assert "Caméra 4K" in message.body and message.body.index("Caméra 4K") < message.body.index("CAM-042")
    # Dates in words, never numbers that read differently in Paris and in Boston.
    assert not re.search(r"\\d{1,2}/\\d{1,2}/\\d{2,4}", text + message.html)
    late = kind == TypeNotification.RETARD
    if kind != TypeNotification.RESTITUTION:
        if canal == Canal.SMS:
            assert (words["late_due"] if late else words["due_short"]) in message.body
        else:
            assert (words["due"].replace("09", "04") if late else words["due"]) in message.body
        # Where to bring it (no hours in an SMS: they would not fit).
        assert DESK in message.body
        if canal != Canal.SMS:
            assert HOURS in message.body
    if late:
        assert "3 h" in message.body  # late by, computed at send time
    elif canal == Canal.EMAIL and kind != TypeNotification.RESTITUTION:
        assert "2 h" in message.body  # time left
    assert PHONE in message.body
    if canal != Canal.SMS:
        assert MAIL in message.body
    if kind == TypeNotification.PROLONGATION:
        assert ("29 novembre" if language == "fr" else "29 November") in message.body  # the old date
    if language == "fr":
        assert not AGREEMENT.search(text.lower()), text
    if canal == Canal.EMAIL:
        assert 0 < len(message.subject) < 60 and "Camille Martin" in message.body
        assert "<html" in message.html and "Caméra 4K" in message.html
        assert (DESK in message.html) is (kind != TypeNotification.RESTITUTION)
    if canal == Canal.SMS:
        size = sms_size(message.body)
        # A refusal also carries the staff's reason, free text of any length: one more segment allowed.
        most = 2 if kind == TypeNotification.PROLONGATION_REFUSEE else 1
        assert size.encoding == "GSM-7" and size.segments <= most, (size, message.body)
    assert len(message.content_variables) == len(messages.CONTENT_VARIABLES)
    assert all(message.content_variables.values())  # WhatsApp refuses an empty template variable


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("canal", Canal.values)
@pytest.mark.parametrize("kind", LOAN_TYPES)
def test_every_borrower_message_links_their_loans_page_when_there_is_one(kind, canal, language, monkeypatch):
    real = messages.context_for
    monkeypatch.setattr(messages, "context_for", lambda *a, **k: {**real(*a, **k), "borrower_url": BORROWER_URL})

    message = message_of(kind, canal, language)

    assert message.body.count(BORROWER_URL) == 1
    if canal == Canal.SMS:
        assert sms_size(message.body).segments <= 2  # the link costs a second segment
    if canal == Canal.EMAIL:
        assert f'href="{BORROWER_URL}"' in message.html


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("kind", LOAN_TYPES)
def test_subjects_stay_under_60_characters_with_long_names(kind, language):
    name = "Batteries lithium pour caméra portable (lot de 4)"
    message = message_of(kind, Canal.EMAIL, language, name=name, client="Marie-Christine de La Fontaine-Dubois")

    assert len(message.subject) < 60, message.subject
    assert message.subject.count("Batteries") == 1
    assert name in message.body  # the body keeps the whole name


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_staff_overdue_copy_says_how_to_reach_the_borrower(language):
    message = message_of(TypeNotification.RETARD, Canal.EMAIL, language, audience=Audience.STAFF)

    assert "+33612345678" in message.body and "camille.martin@example.org" in message.body
    assert "https://pret.example.org/loans/42/" in message.body
    assert 'href="https://pret.example.org/loans/42/"' in message.html
    assert 'href="mailto:camille.martin@example.org"' in message.html
    assert len(message.subject) < 60 and message.subject.index("Caméra 4K") < message.subject.index("Camille")


def test_practical_lines_are_left_out_when_not_set(settings):
    settings.ORGANISATION_RETURN_DESK = settings.ORGANISATION_OPENING_HOURS = ""
    settings.ORGANISATION_CONTACT_PHONE = settings.ORGANISATION_CONTACT_EMAIL = ""

    for canal in Canal.values:
        message = message_of(TypeNotification.RAPPEL_J_MOINS_1, canal, "fr")
        assert "Où le rapporter" not in message.body and "Contact" not in message.body
        assert "Retour :" not in message.body and "Tél." not in message.body
    email = message_of(TypeNotification.RAPPEL_J_MOINS_1, Canal.EMAIL, "en")
    assert "Where to bring it" not in email.html and "Opening hours" not in email.html


@pytest.mark.parametrize(
    "text, encoding, units, segments",
    [
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("à rendre, Ça va ? 5 €", "GSM-7", 22, 1),  # € takes two septets
        ("é" * 160, "GSM-7", 160, 1),  # é, è, à are in GSM 03.38
        ("ê" + "a" * 69, "UCS-2", 70, 1),  # ê is not: the whole message goes UCS-2
        ("ê" + "a" * 70, "UCS-2", 71, 2),
        ("ç" + "a" * 134, "UCS-2", 135, 3),  # 67 units per part
        ("🔔" + "a" * 68, "UCS-2", 70, 1),  # an emoji is two UTF-16 units
        ("l’outil", "UCS-2", 7, 1),  # the typographic apostrophe too
    ],
)
def test_sms_size_counts_gsm7_and_ucs2_segments(text, encoding, units, segments):
    assert sms_size(text) == messages.SmsSize(encoding=encoding, units=units, segments=segments)


def test_a_name_outside_gsm7_makes_an_sms_ucs2_and_longer():
    message = message_of(TypeNotification.RAPPEL_J_MOINS_1, Canal.SMS, "fr", name="Enceinte Bluetooth « Fête »")

    size = sms_size(message.body)
    assert size.encoding == "UCS-2" and size.segments == -(-size.units // 67) > 1
