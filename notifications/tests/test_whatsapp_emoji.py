"""WhatsApp texts are "emoji-rich" as the spec says (its timelines' ✅ 🔔 📋 🚨 🔴 ⚠️ ✨), readable without emoji; SMS stays plain."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from notifications.messages import render, sample_log

EMOJI = {
    "CREATION": "✅",
    "RAPPEL_2H": "🔔",
    "RAPPEL_J_MOINS_2": "📋",
    "RAPPEL_J_MOINS_1": "🚨",
    "RAPPEL_FINAL": "🔴",
    "RETARD": "⚠️",
    "RESTITUTION": "✨",
}
# What a phone without emoji support still shows as the first line, per type and language.
TITLE_WORDS = {
    "fr": {
        "CREATION": "Prêt",
        "RAPPEL_2H": "Rappel",
        "RAPPEL_J_MOINS_2": "Rappel",
        "RAPPEL_J_MOINS_1": "Rappel",
        "RAPPEL_FINAL": "Dernier rappel",
        "RETARD": "Retard",
        "RESTITUTION": "Retour",
    },
    "en": {
        "CREATION": "Loan",
        "RAPPEL_2H": "Reminder",
        "RAPPEL_J_MOINS_2": "Reminder",
        "RAPPEL_J_MOINS_1": "Reminder",
        "RAPPEL_FINAL": "Last reminder",
        "RETARD": "Overdue",
        "RESTITUTION": "Return",
    },
}
pytestmark = pytest.mark.django_db

NON_TEXT = re.compile(r"[^\w\s*:'’,.()—!-]")


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("kind", list(EMOJI))
def test_each_whatsapp_text_opens_with_its_emoji_and_a_title_in_words(kind, language):
    now = timezone.now()
    body = render(sample_log(kind, "WHATSAPP", language, now=now), now=now, language=language).body
    first, rest = body.split("\n", 1)
    assert first.startswith(EMOJI[kind] + " *")
    without_emoji = NON_TEXT.sub("", first).strip(" *")
    assert without_emoji.startswith(TITLE_WORDS[language][kind])
    assert "Camille Martin" in rest and "CAM-042" in rest


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("kind", list(EMOJI))
def test_sms_texts_stay_plain(kind, language):
    now = timezone.now()
    body = render(sample_log(kind, "SMS", language, now=now), now=now, language=language).body
    assert not any(emoji in body for emoji in EMOJI.values())
