"""CR/LF and other control characters: refused where they are typed, harmless where old data still holds them.

A name or code with a line break used to cut the email subject after the break and put
the rest as fake header lines ("Bcc: …") at the top of the text part.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from assets.models import Client, Materiel
from notifications.models import Statut
from notifications.sending import send_notification

from .conftest import make_log

pytestmark = pytest.mark.django_db


def test_old_data_with_line_breaks_is_sent_as_one_subject_line_and_no_fake_headers(smtp_sink):
    """GIVEN a client and a material saved before the rule, with CR/LF and other control characters
    (not NUL: PostgreSQL never stored it),
    WHEN their confirmation is emailed through real SMTP, THEN what the server receives has the whole
    subject on one line, no injected header, and the text part starts with the greeting."""
    log = make_log("CREATION", "EMAIL", email="camille@example.org", language="fr")
    Client.objects.filter(pk=log.attribution.client_id).update(name="Camille\r\nBcc: victim@example.org\x07")
    Materiel.objects.filter(pk=log.attribution.materiel_id).update(
        code="CAM\r\n-042", name="Caméra\nX-Injected: yes\n\nfake body\x0b\x1b[31m"
    )

    assert send_notification(log.pk, now=timezone.now()) == Statut.ENVOYEE

    [message] = smtp_sink.messages
    raw = smtp_sink.envelopes[0].content.decode("ascii", errors="replace")
    header_lines = raw.split("\r\n\r\n", 1)[0].split("\r\n")
    assert not [line for line in header_lines if line.lower().startswith(("bcc:", "x-injected:"))]
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert smtp_sink.envelopes[0].rcpt_tos == ["camille@example.org"]
    subject = " ".join(message["Subject"].split())
    assert subject == "Prêt confirmé : Caméra X-Injected: yes fake…"
    [to] = message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Camille Bcc: victim@example.org", "camille@example.org")
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert text.startswith("Bonjour Camille Bcc: victim@example.org,")
    assert not any(line.startswith(("Bcc:", "X-Injected:", "fake body")) for line in text.splitlines())
    assert not any(ch in text for ch in "\x07\x0b\x1b")


LINE_BREAKS_REFUSED = "Line breaks and other control characters are not allowed here."
# Django's own form fields refuse NUL before any other validator runs, with their own clear message.
REFUSALS = ([LINE_BREAKS_REFUSED], ["Null characters are not allowed."])
HOSTILE = [
    "Camille\r\nBcc: victim@example.org",
    "Cam\nille",
    "Cam\x00ille",
    "Cam\x1b[31mille",
    "Cam\u2028ille",
    "Cam\x85ille",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_the_client_form_refuses_control_characters_in_the_name_and_organisation(staff_client, value):
    from django.urls import reverse

    for field in ("name", "organisation"):
        data = {"name": "Camille", "organisation": "", "email": "c@example.org", "phone": "", "language": "fr"}
        data[field] = value
        response = staff_client.post(reverse("client_create"), data)
        assert response.status_code == 200
        assert response.context["form"].errors[field] in REFUSALS
    assert not Client.objects.exists()


@pytest.mark.parametrize("value", HOSTILE)
def test_the_material_form_refuses_control_characters_in_the_code_name_and_category(staff_client, value):
    from django.urls import reverse

    for field in ("code", "name", "category"):
        data = {"code": "CAM-1", "name": "Caméra", "category": "", "state": "available", "notes": "line one\nline two"}
        data[field] = value
        response = staff_client.post(reverse("materiel_create"), data)
        assert response.status_code == 200
        assert response.context["form"].errors[field] in REFUSALS
    assert not Materiel.objects.exists()


def test_the_admin_refuses_a_client_name_with_a_line_break(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("boss", "boss@example.org", "pw-for-tests-123"))
    response = client.post(
        "/admin/assets/client/add/",
        {
            "name": "Camille\r\nBcc: x@example.org",
            "email": "c@example.org",
            "language": "fr",
            "notification_preferences-TOTAL_FORMS": "0",
            "notification_preferences-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["name"] == [LINE_BREAKS_REFUSED]
    assert not Client.objects.exists()


def test_a_save_outside_any_form_is_refused_with_the_field_and_reason():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as error:
        Client.objects.create(name="Camille\nBcc: x@example.org", email="c@example.org")
    assert error.value.message_dict == {"name": [LINE_BREAKS_REFUSED]}
    with pytest.raises(ValidationError) as error:
        Materiel.objects.create(code="CAM\r\n1", name="Caméra")
    assert error.value.message_dict == {"code": [LINE_BREAKS_REFUSED]}
    assert not Client.objects.exists() and not Materiel.objects.exists()


def test_an_override_subject_with_a_line_break_is_refused_but_a_body_may_have_lines():
    from django.core.exceptions import ValidationError

    from notifications.models import MessageOverride

    with pytest.raises(ValidationError) as error:
        MessageOverride.objects.create(
            type_notification="CREATION",
            canal="EMAIL",
            language="fr",
            subject="Prêt\nBcc: x@example.org",
            body="Bonjour",
        )
    assert error.value.message_dict["subject"] == [LINE_BREAKS_REFUSED]
    with pytest.raises(ValidationError) as error:
        MessageOverride.objects.create(type_notification="CREATION", canal="SMS", language="fr", body="Bon\x00jour")
    assert "Control characters" in error.value.message_dict["body"][0]
    MessageOverride.objects.create(type_notification="CREATION", canal="SMS", language="fr", body="Bonjour,\n\n\tmerci")


def test_the_control_character_rule_is_unicodes_cc_zl_and_zp_categories():
    import unicodedata

    from assets.validators import CONTROL_CHARACTER

    expected = {chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) in ("Cc", "Zl", "Zp")}
    assert set(CONTROL_CHARACTER.findall("".join(map(chr, range(0x110000))))) == expected
