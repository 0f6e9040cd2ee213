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
    assert sorted(outcomes) == sorted(["lent", f"{materiel.code} is already out on another loan."])
    assert Attribution.objects.open().filter(materiel=materiel).count() == 1
