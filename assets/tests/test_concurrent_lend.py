import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections
from django.utils import timezone

from assets import services
from assets.models import Attribution
from assets.tests.factories import ClientFactory, MaterielFactory


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_desks_lending_the_same_material_at_once_exactly_one_wins():
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's; CI runs this file again with DATABASE_URL on PostgreSQL")
    materiel = MaterielFactory()
    clients = [ClientFactory(), ClientFactory()]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def desk(client):
        try:
            barrier.wait()
            now = timezone.now()
            services.lend(materiel=materiel, client=client, due=now + timedelta(hours=2), now=now)
            outcomes.append("lent")
        except ValidationError as exc:
            outcomes.append(" ".join(exc.messages))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=desk, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(outcomes) == 2 and "lent" in outcomes, outcomes
    [refused] = [outcome for outcome in outcomes if outcome != "lent"]
    winner = Attribution.objects.get(materiel=materiel).client
    assert refused.startswith(f"{materiel.code} is already out with {winner.name} (due "), refused
    assert Attribution.objects.open().filter(materiel=materiel).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_baskets_sharing_an_item_one_lends_all_the_other_nothing():
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's; CI runs this file again with DATABASE_URL on PostgreSQL")
    shared, first_only, second_only = MaterielFactory(), MaterielFactory(), MaterielFactory()
    baskets = {"first": [first_only, shared], "second": [shared, second_only]}  # opposite orders: no deadlock
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def desk(name):
        try:
            barrier.wait()
            now = timezone.now()
            services.lend_several(
                materiels=baskets[name], client=ClientFactory(), due=now + timedelta(hours=2), now=now
            )
            outcomes[name] = "lent"
        except ValidationError:
            outcomes[name] = "refused"
        finally:
            connections.close_all()

    threads = [threading.Thread(target=desk, args=(name,)) for name in baskets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes.values()) == ["lent", "refused"]
    winner = next(name for name, outcome in outcomes.items() if outcome == "lent")
    assert set(Attribution.objects.open().values_list("materiel_id", flat=True)) == {m.pk for m in baskets[winner]}
