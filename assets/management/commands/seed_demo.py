"""Create a demo staff login, materials, clients and one loan of each duration class. Safe to run twice."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from assets import services
from assets.models import Attribution, Client, Materiel

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-radgestmat"

MATERIELS = [
    ("CAM-001", "Caméra Sony FX3", "Vidéo"),
    ("CAM-002", "Caméra Canon C70", "Vidéo"),
    ("MIC-001", "Micro Rode NTG5", "Son"),
    ("MIC-002", "Enregistreur Zoom H6", "Son"),
    ("TRI-001", "Trépied Manfrotto", "Accessoires"),
    ("LUM-001", "Panneau LED Aputure", "Lumière"),
]

CLIENTS = [
    ("Camille Martin", "camille.martin@example.org", "+33612345678", "Atelier Lumière", "fr"),
    ("Jordan Smith", "jordan.smith@example.org", "+447911123456", "Film Club", "en"),
    ("Nadia Benali", "nadia.benali@example.org", "", "Radio Campus", "fr"),
]

# (materiel code, client email, planned duration): one loan per duration class.
LOANS = [
    ("CAM-001", "camille.martin@example.org", timedelta(hours=3)),
    ("MIC-001", "jordan.smith@example.org", timedelta(hours=8)),
    ("LUM-001", "nadia.benali@example.org", timedelta(days=5)),
]


class Command(BaseCommand):
    help = "Create demo data (a staff login, materials, clients, loans of each class). Idempotent."

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True, "email": "demo@localhost"}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        for code, name, category in MATERIELS:
            Materiel.objects.get_or_create(code=code, defaults={"name": name, "category": category})
        for name, email, phone, organisation, language in CLIENTS:
            Client.objects.get_or_create(
                email=email, defaults={"name": name, "phone": phone, "organisation": organisation, "language": language}
            )
        now = timezone.now()
        for code, email, duration in LOANS:
            materiel = Materiel.objects.get(code=code)
            if Attribution.objects.filter(materiel=materiel).exists():
                continue
            services.lend(
                materiel=materiel, client=Client.objects.get(email=email), due=now + duration, now=now, by=user
            )
        self.stdout.write(
            self.style.SUCCESS(f"Demo data ready. Log in as “{DEMO_USERNAME}” with password “{DEMO_PASSWORD}”.")
        )
