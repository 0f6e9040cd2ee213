"""Message experiments: deterministic assignment, the variant sent and recorded, the report's statistics, stopping."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from assets.tests.factories import StaffFactory
from notifications import experiments, stats
from notifications.models import Experiment, MessageOverride, NotificationLog, Statut, Variant
from notifications.sending import send_notification

from .conftest import make_log
from .history import past_loans

pytestmark = pytest.mark.django_db
PARIS = ZoneInfo("Europe/Paris")


def start_experiment(type_notification="CREATION", canal="EMAIL", language="fr", shares=(50, 50), **texts):
    experiment = Experiment.objects.create(
        name="Friendlier",
        type_notification=type_notification,
        canal=canal,
        language=language,
        started_at=timezone.now(),
    )
    for label, share in zip("ABCDEF", shares, strict=False):
        Variant.objects.create(
            experiment=experiment,
            label=label,
            share=share,
            subject=texts.get(f"subject_{label}", f"[{label}] {{{{ materiel_code }}}}"),
            body=texts.get(f"body_{label}", f"Variant {label} for {{{{ client_name }}}}."),
        )
    return experiment


@pytest.fixture
def experimenter(client):
    user = StaffFactory(username="lab")
    user.user_permissions.add(Permission.objects.get(codename="run_experiment"))
    client.force_login(user)
    return client


def test_assignment_is_a_pure_function_of_experiment_and_loan_and_follows_the_shares():
    experiment = start_experiment(shares=(80, 20))
    variants = list(experiment.variants.order_by("id"))

    picks = [experiments.assign(variants, experiment.pk, loan_id).label for loan_id in range(1, 4001)]

    # Same inputs, same variant (what a retry, a fallback or another worker process computes).
    assert picks == [experiments.assign(variants, experiment.pk, loan_id).label for loan_id in range(1, 4001)]
    # Not Python's salted hash: a fixed value whatever the process.
    assert experiments.bucket(1, 1) == experiments.bucket(1, 1) and f"{experiments.bucket(1, 1):.6f}" == "0.627649"
    share_a = Counter(picks)["A"] / len(picks)
    assert 0.77 < share_a < 0.83
    # Another experiment splits the same loans independently.
    other = [experiments.assign(variants, experiment.pk + 1, loan_id).label for loan_id in range(1, 4001)]
    assert other != picks


def test_the_variant_text_is_sent_and_recorded_and_every_row_of_a_loan_gets_the_same(mailoutbox):
    experiment = start_experiment()
    variants = {v.label: v for v in experiment.variants.all()}
    logs = [make_log("CREATION", "EMAIL", language="fr") for _ in range(12)]

    for log in logs:
        assert send_notification(log.pk, now=timezone.now()) == Statut.ENVOYEE

    for log, email in zip(logs, mailoutbox, strict=False):
        log.refresh_from_db()
        expected = experiments.assign(list(variants.values()), experiment.pk, log.attribution_id)
        assert log.variant == expected
        assert email.subject == f"[{expected.label}] {log.attribution.materiel.code}"
        assert email.body.startswith(f"Variant {expected.label} for ")
    assert {log.variant.label for log in logs} == {"A", "B"}

    # A retry of the same loan's row (requeued after a failure) renders the same variant.
    first = logs[0]
    NotificationLog.objects.filter(pk=first.pk).update(statut=Statut.ECHEC)
    send_notification(first.pk, now=timezone.now())
    assert mailoutbox[-1].subject == mailoutbox[0].subject


def test_rows_outside_the_experiment_keep_their_text_and_no_variant(mailoutbox):
    start_experiment(language="en")
    log = make_log("CREATION", "EMAIL", language="fr")

    send_notification(log.pk, now=timezone.now())

    log.refresh_from_db()
    assert log.variant is None
    assert not mailoutbox[0].subject.startswith("[")


def test_the_report_on_a_known_data_set():
    """GIVEN Newcombe's (1998) worked example: A 56 of 70 on time, B 48 of 80
    THEN B − A is −20 points with the hybrid score interval −33.4 to −5.2, and B is reported worse."""
    experiment = start_experiment(canal="WHATSAPP")
    a, b = experiment.variants.order_by("id")
    sent_at = timezone.now() - timedelta(days=10)
    past_loans(70, sent_at=sent_at, on_time=56, variant=a, canal="WHATSAPP", read=35)
    past_loans(80, sent_at=sent_at, on_time=48, variant=b, canal="WHATSAPP", read=20, open_late=4)
    past_loans(
        5, sent_at=timezone.now(), on_time=0, variant=b, canal="WHATSAPP", open_late=5
    )  # due tomorrow: no outcome yet

    report = experiments.report(experiment, now=timezone.now())

    result_a, result_b = report.results
    assert (result_a.loans, result_a.decided, result_a.on_time, result_a.read) == (70, 70, 56, 35)
    assert (result_b.loans, result_b.decided, result_b.pending, result_b.on_time, result_b.read) == (85, 80, 5, 48, 20)
    low, high = result_a.on_time_interval
    assert (round(low, 4), round(high, 4)) == (0.6918, 0.877)
    comparison = report.comparisons[0]
    assert (round(comparison.difference, 4), round(comparison.low, 4), round(comparison.high, 4)) == (
        -0.2,
        -0.3339,
        -0.0524,
    )
    assert report.enough_data
    assert "B brings fewer loans back on time than A: -20.0 points" in comparison.verdict
    assert report.best == a


def test_the_report_says_plainly_when_there_is_not_enough_data(settings):
    settings.EXPERIMENT_MIN_LOANS = 30
    experiment = start_experiment()
    a, b = experiment.variants.order_by("id")
    sent_at = timezone.now() - timedelta(days=10)
    past_loans(40, sent_at=sent_at, on_time=35, variant=a)
    past_loans(12, sent_at=sent_at, on_time=2, variant=b)

    report = experiments.report(experiment, now=timezone.now())

    assert not report.enough_data and report.best is None
    assert report.conclusion.startswith("Not enough data to conclude")
    assert "B has 12" in report.conclusion


def test_the_report_costs_the_same_queries_for_ten_or_a_thousand_loans(django_assert_num_queries):
    small, large = start_experiment(language="fr"), start_experiment(language="en")
    sent_at = timezone.now() - timedelta(days=10)
    for experiment, count in ((small, 5), (large, 500)):
        for variant in experiment.variants.all():
            past_loans(count, sent_at=sent_at, on_time=count // 2, variant=variant)

    for experiment in (small, large):
        experiment = Experiment.objects.get(pk=experiment.pk)
        with django_assert_num_queries(2):  # the variants, one aggregate
            experiments.report(experiment, now=timezone.now())


def test_newcombe_and_wilson_at_the_edges():
    assert stats.wilson(0, 0) == (0.0, 1.0)
    low, high = stats.wilson(0, 10)
    assert low == 0.0 and 0.27 < high < 0.28  # never a zero-width interval
    difference, low, high = stats.newcombe_difference(10, 10, 0, 10)
    assert difference == 1.0 and 0.6 < low < 0.7 and high == 1.0


def test_stopping_with_a_winner_makes_its_text_the_override(mailoutbox):
    experiment = start_experiment(body_B="Winner text for {{ client_name }}.", subject_B="Winner {{ materiel_code }}")
    winner = experiment.variants.get(label="B")

    experiments.stop(experiment, now=timezone.now(), winner=winner)

    override = MessageOverride.objects.get(type_notification="CREATION", canal="EMAIL", language="fr")
    assert override.body == "Winner text for {{ client_name }}."
    log = make_log("CREATION", "EMAIL", language="fr", name="Camille")
    send_notification(log.pk, now=timezone.now())
    assert mailoutbox[0].body == "Winner text for Camille."
    log.refresh_from_db()
    assert log.variant is None
    with pytest.raises(experiments.AlreadyStopped):
        experiments.stop(experiment, now=timezone.now())


def test_staff_create_an_experiment_see_its_report_and_stop_it(experimenter, settings):
    settings.LANGUAGE_CODE = "en"
    form = {
        "name": "Shorter reminder",
        "type_notification": "RAPPEL_J_MOINS_1",
        "canal": "EMAIL",
        "language": "fr",
        "variants-TOTAL_FORMS": "3",
        "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "2",
        "variants-MAX_NUM_FORMS": "6",
        "variants-0-share": "50",
        "variants-0-subject": "Rappel {{ materiel_code }}",
        "variants-0-body": "Bonjour {{ client_name }}, retour le {{ due }}.",
        "variants-1-share": "50",
        "variants-1-subject": "Demain : {{ materiel_code }}",
        "variants-1-body": "{{ client_name }}, à demain !",
        "variants-2-share": "50",
        "variants-2-subject": "",
        "variants-2-body": "",
    }

    response = experimenter.post(reverse("experiment_new"), form)

    experiment = Experiment.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("experiment_report", args=[experiment.pk])
    assert [v.label for v in experiment.variants.order_by("id")] == ["A", "B"]
    page = experimenter.get(reverse("experiment_report", args=[experiment.pk]))
    assert b"Not enough data to conclude" in page.content
    experimenter.post(
        reverse("experiment_stop", args=[experiment.pk]), {"winner": experiment.variants.get(label="B").pk}
    )
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.STOPPED and experiment.winner.label == "B"
    assert MessageOverride.objects.get(type_notification="RAPPEL_J_MOINS_1").body == "{{ client_name }}, à demain !"


def test_a_variant_is_refused_exactly_as_an_override_would_be(experimenter, settings):
    settings.LANGUAGE_CODE = "en"
    form = {
        "name": "Broken",
        "type_notification": "CREATION",
        "canal": "EMAIL",
        "language": "fr",
        "variants-TOTAL_FORMS": "2",
        "variants-INITIAL_FORMS": "0",
        "variants-0-share": "50",
        "variants-0-subject": "Prêt",
        "variants-0-body": "Bonjour {{ client_name }}.",
        "variants-1-share": "50",
        "variants-1-subject": "",
        "variants-1-body": "Bonjour {{ nom_inconnu }}.",
    }

    response = experimenter.post(reverse("experiment_new"), form)

    assert response.status_code == 200
    assert not Experiment.objects.exists()
    errors = response.context["formset"].forms[1].errors
    assert errors["subject"] == ["An email needs a subject."]
    form["variants-1-subject"] = "Prêt"
    response = experimenter.post(reverse("experiment_new"), form)
    assert "nom_inconnu" in response.context["formset"].forms[1].errors["body"][0]
    assert not Experiment.objects.exists()


def test_one_running_experiment_per_message(experimenter, settings):
    settings.LANGUAGE_CODE = "en"
    start_experiment()
    response = experimenter.post(
        reverse("experiment_new"),
        {
            "name": "Again",
            "type_notification": "CREATION",
            "canal": "EMAIL",
            "language": "fr",
            "variants-TOTAL_FORMS": "2",
            "variants-INITIAL_FORMS": "0",
            "variants-0-share": "50",
            "variants-0-subject": "a",
            "variants-0-body": "a",
            "variants-1-share": "50",
            "variants-1-subject": "b",
            "variants-1-body": "b",
        },
    )
    assert response.status_code == 200
    assert "already running" in response.content.decode()
    assert Experiment.objects.count() == 1


def test_the_pages_need_the_permission(staff_client):
    experiment = start_experiment()
    assert staff_client.get(reverse("experiment_list")).status_code == 403
    assert staff_client.get(reverse("experiment_new")).status_code == 403
    assert staff_client.get(reverse("experiment_report", args=[experiment.pk])).status_code == 403
    assert staff_client.post(reverse("experiment_stop", args=[experiment.pk])).status_code == 403
    assert Experiment.objects.get().is_running


def test_the_pages_speak_french(experimenter, settings):
    settings.LANGUAGE_CODE = "fr"
    experiment = start_experiment()
    page = experimenter.get(reverse("experiment_report", args=[experiment.pk]), HTTP_ACCEPT_LANGUAGE="fr")
    assert "Pas assez de données pour conclure" in page.content.decode()
    page = experimenter.get(reverse("experiment_list"), HTTP_ACCEPT_LANGUAGE="fr")
    assert "Expériences sur les messages" in page.content.decode()


def test_a_variant_that_reads_other_templates_is_refused_like_an_override(experimenter, settings):
    settings.LANGUAGE_CODE = "en"
    response = experimenter.post(
        reverse("experiment_new"),
        {
            "name": "Sneaky",
            "type_notification": "CREATION",
            "canal": "SMS",
            "language": "fr",
            "variants-TOTAL_FORMS": "2",
            "variants-INITIAL_FORMS": "0",
            "variants-0-share": "50",
            "variants-0-subject": "",
            "variants-0-body": "Bonjour {{ client_name }}.",
            "variants-1-share": "50",
            "variants-1-subject": "",
            "variants-1-body": '{% include "base.html" %}',
        },
    )

    assert response.status_code == 200 and not Experiment.objects.exists()
    assert "include" in response.context["formset"].forms[1].errors["body"][0]
