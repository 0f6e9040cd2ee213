"""Lend, return, extend: every bad input gives its error and leaves the database unchanged."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from assets import services
from assets.models import Attribution, Client, Materiel
from assets.signals import attribution_created, attribution_extended, attribution_returned
from assets.tests.factories import AttributionFactory, ClientFactory, MaterielFactory, StaffFactory

NOW = datetime(2026, 6, 10, 14, 0, tzinfo=ZoneInfo("Europe/Paris"))

pytestmark = pytest.mark.django_db


def snapshot():
    return (
        list(Attribution.objects.order_by("pk").values()),
        list(Materiel.objects.order_by("pk").values("pk", "state")),
    )


def test_lend_records_the_loan_and_marks_the_material_lent():
    materiel, client, staff = MaterielFactory(), ClientFactory(), StaffFactory()
    loan = services.lend(materiel=materiel, client=client, due=NOW + timedelta(hours=3), now=NOW, by=staff)
    loan.refresh_from_db()
    assert (loan.date_debut, loan.duree, loan.statut, loan.created_by) == (NOW, "COURT", "EN_COURS", staff)
    assert Materiel.objects.get(pk=materiel.pk).state == Materiel.State.LENT


@pytest.mark.parametrize(
    "arrange, field, words",
    [
        (lambda m, c: AttributionFactory(materiel=m), "materiel", "already out"),
        (lambda m, c: Materiel.objects.filter(pk=m.pk).update(state="out_of_service"), "materiel", "out of service"),
        (lambda m, c: Client.objects.filter(pk=c.pk).update(email="", phone=""), "client", "no email"),
    ],
    ids=["already-out", "out-of-service", "client-without-contact"],
)
def test_lend_refuses_bad_input_and_saves_nothing(arrange, field, words):
    materiel, client = MaterielFactory(), ClientFactory()
    arrange(materiel, client)
    materiel.refresh_from_db()
    client.refresh_from_db()
    before = snapshot()
    with pytest.raises(ValidationError) as exc:
        services.lend(materiel=materiel, client=client, due=NOW + timedelta(hours=3), now=NOW)
    assert words in " ".join(exc.value.message_dict[field])
    assert snapshot() == before


@pytest.mark.parametrize("due", [NOW, NOW - timedelta(minutes=1)], ids=["due-equals-start", "due-before-start"])
def test_lend_refuses_due_not_after_start(due):
    materiel, client = MaterielFactory(), ClientFactory()
    before = snapshot()
    with pytest.raises(ValidationError) as exc:
        services.lend(materiel=materiel, client=client, due=due, now=NOW)
    assert "after the start" in exc.value.message_dict["date_retour_prevue"][0]
    assert snapshot() == before


def test_return_frees_the_material():
    loan = services.lend(materiel=MaterielFactory(), client=ClientFactory(), due=NOW + timedelta(hours=3), now=NOW)
    services.record_return(loan, now=NOW + timedelta(hours=1))
    loan.refresh_from_db()
    assert (loan.statut, loan.date_retour_effective) == ("RESTITUEE", NOW + timedelta(hours=1))
    assert loan.materiel.state == Materiel.State.AVAILABLE


def test_returning_twice_is_refused_and_changes_nothing():
    loan = services.lend(materiel=MaterielFactory(), client=ClientFactory(), due=NOW + timedelta(hours=3), now=NOW)
    services.record_return(loan, now=NOW + timedelta(hours=1))
    before = snapshot()
    with pytest.raises(ValidationError, match="already returned"):
        services.record_return(loan, now=NOW + timedelta(hours=2))
    assert snapshot() == before


def test_return_before_start_is_refused():
    loan = services.lend(materiel=MaterielFactory(), client=ClientFactory(), due=NOW + timedelta(hours=3), now=NOW)
    before = snapshot()
    with pytest.raises(ValidationError) as exc:
        services.record_return(loan, now=NOW, returned_at=NOW - timedelta(minutes=5))
    assert "before the start" in exc.value.message_dict["date_retour_effective"][0]
    assert snapshot() == before


@pytest.mark.parametrize("ahead", [timedelta(hours=48), services.RETURN_CLOCK_TOLERANCE + timedelta(seconds=1)])
def test_a_return_dated_in_the_future_is_refused(ahead):
    loan = services.lend(materiel=MaterielFactory(), client=ClientFactory(), due=NOW + timedelta(hours=3), now=NOW)
    before = snapshot()
    with pytest.raises(ValidationError) as exc:
        services.record_return(loan, now=NOW, returned_at=NOW + ahead)
    assert exc.value.message_dict["date_retour_effective"] == ["The return cannot be in the future."]
    assert snapshot() == before


def test_a_return_within_the_clock_tolerance_is_accepted():
    """A desk clock a little ahead of the server's is not an error."""
    loan = services.lend(materiel=MaterielFactory(), client=ClientFactory(), due=NOW + timedelta(hours=3), now=NOW)
    services.record_return(loan, now=NOW, returned_at=NOW + services.RETURN_CLOCK_TOLERANCE)
    loan.refresh_from_db()
    assert loan.date_retour_effective == NOW + services.RETURN_CLOCK_TOLERANCE


def test_extend_moves_the_due_date_and_reclassifies():
    loan = services.lend(materiel=MaterielFactory(), client=ClientFactory(), due=NOW + timedelta(hours=3), now=NOW)
    services.extend(loan, new_due=NOW + timedelta(days=3), now=NOW)
    loan.refresh_from_db()
    assert (loan.date_retour_prevue, loan.duree) == (NOW + timedelta(days=3), "LONG")


@pytest.mark.parametrize(
    "new_due, words", [(NOW, "after the start"), (NOW + timedelta(hours=3), "same as the current")]
)
def test_extend_refuses_bad_due(new_due, words):
    loan = services.lend(materiel=MaterielFactory(), client=ClientFactory(), due=NOW + timedelta(hours=3), now=NOW)
    before = snapshot()
    with pytest.raises(ValidationError) as exc:
        services.extend(loan, new_due=new_due, now=NOW)
    assert words in exc.value.message_dict["date_retour_prevue"][0]
    assert snapshot() == before


def test_extend_refuses_a_returned_loan():
    loan = services.lend(materiel=MaterielFactory(), client=ClientFactory(), due=NOW + timedelta(hours=3), now=NOW)
    services.record_return(loan, now=NOW + timedelta(hours=1))
    before = snapshot()
    with pytest.raises(ValidationError, match="returned loan cannot be extended"):
        services.extend(loan, new_due=NOW + timedelta(hours=5), now=NOW)
    assert snapshot() == before


@pytest.mark.parametrize(
    "fields",
    [
        {"date_retour_prevue": NOW},
        {"date_retour_effective": NOW - timedelta(hours=1), "statut": "RESTITUEE"},
    ],
    ids=["due-not-after-start", "returned-before-start"],
)
def test_database_constraints_refuse_bad_rows_written_around_the_services(fields):
    loan = AttributionFactory(date_debut=NOW, date_retour_prevue=NOW + timedelta(hours=1))
    with pytest.raises(IntegrityError), transaction.atomic():
        Attribution.objects.filter(pk=loan.pk).update(**fields)


def test_database_refuses_a_second_open_loan_of_one_material():
    loan = AttributionFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        AttributionFactory(materiel=loan.materiel)


class Recorder:
    def __init__(self, signal):
        self.calls = []
        signal.connect(self, weak=False)
        self.signal = signal

    def __call__(self, sender, **kwargs):
        self.calls.append(kwargs)

    def close(self):
        self.signal.disconnect(self)


@pytest.fixture
def recorders():
    made = {s: Recorder(s) for s in (attribution_created, attribution_returned, attribution_extended)}
    yield made
    for recorder in made.values():
        recorder.close()


def test_signals_fire_once_after_commit(recorders, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as pending:
        loan = services.lend(materiel=MaterielFactory(), client=ClientFactory(), due=NOW + timedelta(hours=3), now=NOW)
    assert recorders[attribution_created].calls == [], "sent before commit"
    for callback in pending:
        callback()
    assert [c["attribution"].pk for c in recorders[attribution_created].calls] == [loan.pk]

    with django_capture_on_commit_callbacks(execute=True):
        services.extend(loan, new_due=NOW + timedelta(hours=5), now=NOW)
    assert [c["previous_due"] for c in recorders[attribution_extended].calls] == [NOW + timedelta(hours=3)]

    with django_capture_on_commit_callbacks(execute=True):
        services.record_return(loan, now=NOW + timedelta(hours=1))
    assert len(recorders[attribution_returned].calls) == 1
    assert len(recorders[attribution_created].calls) == 1


def test_no_signal_on_rollback(recorders, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as pending:
        try:
            with transaction.atomic():
                services.lend(materiel=MaterielFactory(), client=ClientFactory(), due=NOW + timedelta(hours=3), now=NOW)
                raise RuntimeError("the surrounding request failed")
        except RuntimeError:
            pass
    assert pending == []
    assert recorders[attribution_created].calls == []
    assert not Attribution.objects.exists()
