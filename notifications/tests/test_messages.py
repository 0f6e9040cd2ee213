"""Every message renders in both languages on every channel; a missing variable fails loudly."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.template import Context
from django.utils import timezone

from notifications.messages import MissingVariable, engine, render, sample_log
from notifications.models import MessageOverride

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def test_messages_speak_the_recipients_language():
    fr = render(sample_log("RAPPEL_J_MOINS_1", "EMAIL", "fr", now=NOW), now=NOW, language="fr")
    en = render(sample_log("RAPPEL_J_MOINS_1", "EMAIL", "en", now=NOW), now=NOW, language="en")

    assert fr.subject == "À rendre demain : Caméra 4K"
    assert en.subject == "Due back tomorrow: Caméra 4K"
    months_fr = (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    )
    assert any(month in fr.body for month in months_fr)


def test_a_template_naming_an_unknown_variable_raises():
    template = engine(False).from_string("Bonjour {{ client_nmae }}")
    override = MessageOverride(
        type_notification="CREATION", canal="SMS", language="fr", body="Bonjour {{ client_nmae }}"
    )

    with pytest.raises(MissingVariable, match="client_nmae"):
        render(sample_log("CREATION", "SMS", "fr", now=NOW), now=NOW, language="fr", override=override)
    assert "@@MISSING:client_nmae@@" in template.render(Context({}))


def test_an_override_replaces_the_file_template():
    MessageOverride.objects.create(
        type_notification="CREATION",
        canal="WHATSAPP",
        language="fr",
        body="Salut {{ client_name }} : {{ materiel_code }}",
    )

    message = render(sample_log("CREATION", "WHATSAPP", "fr", now=NOW), now=NOW)

    assert message.body == "Salut Camille Martin : CAM-042"


def test_an_email_override_gets_the_shared_layout_and_escapes_data():
    override = MessageOverride.objects.create(
        type_notification="RESTITUTION",
        canal="EMAIL",
        language="en",
        subject="Thanks {{ client_name }}",
        body="Hi {{ client_name }},\n\nWe got {{ materiel_code }} back.",
    )
    log = sample_log("RESTITUTION", "EMAIL", "en", now=NOW)
    log.attribution.client.name = "<i>Jo</i>"

    message = render(log, now=NOW)

    assert override.pk and message.subject == "Thanks <i>Jo</i>"
    assert "<p>Hi &lt;i&gt;Jo&lt;/i&gt;,</p>" in message.html
    assert 'name="viewport"' in message.html


def test_a_broken_override_cannot_be_saved():
    with pytest.raises(ValidationError) as error:
        MessageOverride.objects.create(
            type_notification="RETARD", canal="SMS", language="fr", body="{{ late_by_days }}"
        )
    assert "late_by_days" in str(error.value.message_dict["body"])

    with pytest.raises(ValidationError) as error:
        MessageOverride.objects.create(type_notification="RETARD", canal="SMS", language="fr", body="{% if %}")
    assert "body" in error.value.message_dict

    with pytest.raises(ValidationError) as error:
        MessageOverride.objects.create(type_notification="RETARD", canal="EMAIL", language="fr", body="Bonjour")
    assert "subject" in error.value.message_dict
    assert not MessageOverride.objects.exists()


def test_the_admin_shows_the_rendering_error_by_the_field(admin_client):
    response = admin_client.post(
        "/admin/notifications/messageoverride/add/",
        {"type_notification": "RETARD", "canal": "SMS", "language": "fr", "subject": "", "body": "{{ nope }}"},
    )

    assert response.status_code == 200
    assert "nope" in response.context["adminform"].form.errors["body"][0]
    assert not MessageOverride.objects.exists()


def test_the_admin_saves_a_valid_override_and_previews_it(admin_client):
    response = admin_client.post(
        "/admin/notifications/messageoverride/add/",
        {
            "type_notification": "RAPPEL_2H",
            "canal": "SMS",
            "language": "en",
            "subject": "",
            "body": "{{ materiel_code }} due in {{ remaining }}",
        },
    )
    assert response.status_code == 302
    override = MessageOverride.objects.get()

    page = admin_client.get(f"/admin/notifications/messageoverride/{override.pk}/change/")

    assert "CAM-042 due in 2 h" in page.content.decode()


def test_an_unknown_language_falls_back_to_the_default_one(settings):
    settings.LANGUAGE_CODE = "fr"
    log = sample_log("CREATION", "SMS", "de", now=NOW)

    assert render(log, now=NOW).language == "fr"


@pytest.mark.parametrize(
    "text",
    [
        "{% include '/etc/passwd' %}",
        "{% include 'notifications/email/fr/_facts.txt' %}",
        "Bonjour {% extends 'notifications/email/layout.html' %}",
        "{% load static %}{% static 'x' %}",
        "{% load i18n %}{{ client_name }}",
        "{%ssi '/etc/passwd' %}",
        "{% debug %}",
        '{% if is_late %}{% include "../../../../etc/passwd" %}{% endif %}',
    ],
)
@pytest.mark.parametrize("field", ["body", "subject"])
def test_an_override_that_includes_or_loads_is_refused_by_the_admin_form(admin_client, text, field, monkeypatch):
    """GIVEN an override text with a tag that reads a file or loads code, WHEN the admin saves it,
    THEN the form says includes are not allowed (no 500) and no file was opened."""
    import builtins

    opened = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda file, *a, **k: opened.append(str(file)) or real_open(file, *a, **k))
    data = {"type_notification": "RETARD", "canal": "EMAIL", "language": "fr", "subject": "Retard", "body": "Bonjour"}
    data[field] = text

    response = admin_client.post("/admin/notifications/messageoverride/add/", data)

    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors[field]
    assert "Includes are not allowed in a message" in error
    assert not MessageOverride.objects.exists()
    assert not [path for path in opened if "passwd" in path or path.endswith((".txt", "layout.html"))]
