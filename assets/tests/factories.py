from __future__ import annotations

from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from assets.models import Attribution, Client, Materiel
from assets.signals import sent_by_caller


class StaffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.org")
    is_staff = True
    password = factory.django.Password("s3cret-pass")


class MaterielFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Materiel

    code = factory.Sequence(lambda n: f"MAT-{n:05d}")
    name = factory.Sequence(lambda n: f"Matériel {n}")
    category = "Vidéo"


class ClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Client

    name = factory.Sequence(lambda n: f"Client {n}")
    email = factory.Sequence(lambda n: f"client{n}@example.org")
    phone = "+33612345678"
    language = "fr"


class AttributionFactory(factory.django.DjangoModelFactory):
    """A loan row written directly (no services, no signals): for arranging state in tests."""

    class Meta:
        model = Attribution

    materiel = factory.SubFactory(MaterielFactory, state=Materiel.State.LENT)
    client = factory.SubFactory(ClientFactory)
    date_debut = factory.LazyFunction(timezone.now)
    date_retour_prevue = factory.LazyAttribute(lambda o: o.date_debut + timedelta(hours=3))

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with sent_by_caller():  # arranging state: no lifecycle signal, nothing planned
            return super()._create(model_class, *args, **kwargs)
