"""The send path's statements written or compiled once (radgestmat.compiled) give what the ORM gives."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from assets.services import extend
from assets.tests.factories import AttributionFactory
from notifications.models import MessageOverride, NotificationLog, Statut
from notifications.sending import load_for_sending
from notifications.tests.conftest import make_log
from radgestmat.compiled import CompiledById, update_by_ids

pytestmark = pytest.mark.django_db

RELATED = (
    "attribution",
    "attribution__client",
    "attribution__materiel",
    "attribution__client__notification_preferences",
)


def described(row: NotificationLog) -> tuple:
    loan = row.attribution
    preferences = getattr(loan.client, "notification_preferences", None)
    return (
        row.pk,
        row.type_notification,
        row.date_scheduled,
        loan.pk,
        loan.date_retour_prevue,
        loan.materiel.code,
        loan.client.email,
        preferences and preferences.notifications_email,
        loan.created_by and loan.created_by.username,
        row.extension_count,  # type: ignore[attr-defined]
        row.has_override,  # type: ignore[attr-defined]
        row.has_experiment,  # type: ignore[attr-defined]
    )


def test_the_compiled_load_gives_the_rows_the_queryset_gives_related_objects_and_annotations_included():
    now = timezone.now()
    logs = [make_log("CREATION", "EMAIL") for _ in range(3)] + [make_log("RAPPEL_2H", "SMS")]
    extend(logs[1].attribution, new_due=now + timedelta(days=9), now=now)
    MessageOverride.objects.create(
        type_notification="RAPPEL_2H", canal="SMS", language="fr", body="Rappel {{ materiel_code }}"
    )
    plain = load_for_sending._build  # the queryset itself, compiled on every call

    for ids in ([logs[0].pk], [logs[2].pk, logs[1].pk], [logs[3].pk, logs[0].pk, logs[1].pk], [logs[1].pk, 999_999]):
        expected = [described(row) for row in plain(ids)]
        assert [described(row) for row in load_for_sending(ids)] == expected
        assert expected  # the comparison compared something
    assert described(load_for_sending([logs[1].pk])[0])[9] == 1  # the extension counted
    assert described(load_for_sending([logs[3].pk])[0])[10] is True  # the override seen


def test_the_sql_is_compiled_once_per_number_of_ids(monkeypatch):
    from django.db.models.sql.compiler import SQLCompiler

    logs = [make_log("CREATION", "EMAIL") for _ in range(4)]
    load = CompiledById(lambda ids: NotificationLog.objects.select_related(*RELATED).filter(pk__in=ids).order_by("id"))
    compiled = []
    as_sql = SQLCompiler.as_sql

    def counting(self, *args, **kwargs):
        compiled.append(self.query.model)
        return as_sql(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counting)
    for log in logs:
        assert [row.pk for row in load([log.pk])] == [log.pk]
    assert [row.pk for row in load([logs[0].pk, logs[1].pk])] == [logs[0].pk, logs[1].pk]
    assert [row.pk for row in load([logs[2].pk, logs[3].pk])] == [logs[2].pk, logs[3].pk]
    assert len(compiled) == 2  # once for one id, once for two
    assert load([]) == []


def test_a_queryset_whose_ids_are_not_parameters_is_compiled_every_time():
    """Should a queryset put the ids into its SQL itself, the rows are still right (just not faster)."""
    log = make_log("CREATION", "EMAIL")
    load = CompiledById(lambda ids: NotificationLog.objects.extra(where=[f"id IN ({', '.join(map(str, ids))})"]))
    assert [row.pk for row in load([log.pk])] == [log.pk]
    assert load([log.pk + 1000]) == []


def test_update_by_ids_writes_only_the_rows_that_match_and_converts_values_like_the_orm():
    loan = AttributionFactory()
    held, other = make_log("CREATION", "EMAIL", attribution=loan), make_log("CREATION", "SMS", attribution=loan)
    NotificationLog.objects.filter(pk=held.pk).update(statut=Statut.EN_COURS)
    when = timezone.now()

    with CaptureQueriesContext(connection) as queries:
        updated = update_by_ids(
            NotificationLog,
            [held.pk, other.pk],
            only={"statut": Statut.EN_COURS},
            values={"statut": Statut.ENVOYEE, "date_envoi": when, "reason_params": {"n": 2}, "variant_id": None},
        )

    assert updated == 1 and len(queries) == 1
    held.refresh_from_db()
    other.refresh_from_db()
    assert (held.statut, held.date_envoi, held.reason_params, held.variant_id) == (Statut.ENVOYEE, when, {"n": 2}, None)
    assert other.statut == Statut.EN_ATTENTE and other.date_envoi is None
    assert update_by_ids(NotificationLog, [], only={}, values={"statut": Statut.ANNULEE}) == 0
