"""Every admin action declares the permission it needs, and a view-only staff user can run none of them.

The list of actions is read from the admin site itself, so an action added later
(ours or a third-party app's) is covered by these tests without editing them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.forms.models import model_to_dict
from django.urls import reverse
from django.utils import timezone

from assets.tests.factories import AttributionFactory, ClientFactory, MaterielFactory, StaffFactory

pytestmark = pytest.mark.django_db


def make_periodic_task():
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    interval = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.MINUTES)
    return PeriodicTask.objects.create(name="cleanup", task="tasks.cleanup_old_notifications", interval=interval)


def make_notification_log():
    from notifications.models import Canal, NotificationLog, TypeNotification

    return NotificationLog.objects.create(
        attribution=AttributionFactory(),
        type_notification=TypeNotification.RAPPEL_2H,
        canal=Canal.EMAIL,
        date_scheduled=timezone.now() + timedelta(hours=1),
    )


def make_override():
    from notifications.models import MessageOverride

    return MessageOverride.objects.create(
        type_notification="CREATION", canal="SMS", language="fr", body="Prêt de {{ materiel_code }}."
    )


def make_inbound_message():
    from notifications.models import Canal, InboundMessage

    loan = AttributionFactory()
    return InboundMessage.objects.create(
        message_sid="SM" + "1" * 32,
        canal=Canal.WHATSAPP,
        from_number=loan.client.phone,
        client=loan.client,
        attribution=loan,
        kind=InboundMessage.Kind.TEXT,
        body="Bonjour",
        received_at=timezone.now(),
    )


def _model(label: str):
    from django.apps import apps

    return apps.get_model(label)


# One object of each model the admin shows, for an action to be tried on.
MAKERS: dict[str, Callable] = {
    "auth.Group": lambda: Group.objects.create(name="desk"),
    "auth.User": lambda: StaffFactory(username="someone-else"),
    "django_celery_beat.PeriodicTask": make_periodic_task,
    "django_celery_beat.ClockedSchedule": lambda: _model("django_celery_beat.ClockedSchedule").objects.create(
        clocked_time=timezone.now()
    ),
    "django_celery_beat.CrontabSchedule": lambda: _model("django_celery_beat.CrontabSchedule").objects.create(),
    "django_celery_beat.SolarSchedule": lambda: _model("django_celery_beat.SolarSchedule").objects.create(
        event="sunrise", latitude=48.85, longitude=2.35
    ),
    "django_celery_beat.IntervalSchedule": lambda: _model("django_celery_beat.IntervalSchedule").objects.create(
        every=5, period="minutes"
    ),
    "django_celery_results.TaskResult": lambda: _model("django_celery_results.TaskResult").objects.create(
        task_id="t-1"
    ),
    "django_celery_results.GroupResult": lambda: _model("django_celery_results.GroupResult").objects.create(
        group_id="g-1"
    ),
    "assets.Materiel": MaterielFactory,
    "assets.Client": ClientFactory,
    "assets.Attribution": lambda: AttributionFactory(date_debut=timezone.now() - timedelta(hours=1)),
    "assets.ExtensionRequest": lambda: _model("assets.ExtensionRequest").objects.create(
        attribution=AttributionFactory(),
        requested_due=timezone.now() + timedelta(days=1),
        previous_due=timezone.now() + timedelta(hours=3),
        requested_at=timezone.now(),
    ),
    "notifications.NotificationLog": make_notification_log,
    "notifications.NotificationPreferences": lambda: _model("notifications.NotificationPreferences").objects.create(
        client=ClientFactory()
    ),
    "notifications.WhatsAppConfig": lambda: _model("notifications.WhatsAppConfig").objects.create(
        phone_number_sender="+33612345678"
    ),
    "notifications.MessageOverride": make_override,
    "notifications.InboundMessage": make_inbound_message,
}

ACTIONS = [
    pytest.param(model, name, func, id=f"{model._meta.label}.{name}")
    for model, model_admin in admin.site._registry.items()
    for func, name, _description in model_admin._get_base_actions()  # type: ignore[attr-defined]  # django-stubs omit this private ModelAdmin method
]


def test_every_model_in_the_admin_has_an_object_maker_here():
    assert sorted(MAKERS) == sorted(model._meta.label for model in admin.site._registry)


@pytest.mark.parametrize(("model", "name", "func"), ACTIONS)
def test_the_action_declares_its_permission(model, name, func):
    assert getattr(func, "allowed_permissions", None), f"{model._meta.label} admin action {name} has no permissions="


def staff_with(model, *codenames: str):
    user: User = StaffFactory(username=f"admin-{'-'.join(codenames)}")  # type: ignore[assignment]  # factory-boy: calling a factory returns the model instance
    content_type = ContentType.objects.get_for_model(model)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type=content_type, codename__in=[f"{c}_{model._meta.model_name}" for c in codenames]
        )
    )
    return user


def offered_actions(client, model) -> set[str]:
    response = client.get(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
    assert response.status_code == 200
    action_form = response.context["action_form"]  # None when the user may run no action at all
    return {name for name, _label in action_form.fields["action"].choices if name} if action_form else set()


def snapshot(model) -> list[dict]:
    return [model_to_dict(obj) for obj in model._default_manager.order_by("pk")]


@pytest.mark.parametrize(("model", "name", "func"), ACTIONS)
def test_a_view_only_staff_user_cannot_run_the_action(client, model, name, func):
    """GIVEN a staff user who may only view the model, WHEN they post the action on an object,
    THEN it is neither offered nor run: the table is unchanged."""
    obj = MAKERS[model._meta.label]()
    # The permissions the action declares (change, if none) are enough to be offered it:
    # the refusal below is about view-only.
    client.force_login(staff_with(model, "view", *(getattr(func, "allowed_permissions", None) or ["change"])))
    assert name in offered_actions(client, model)

    client.force_login(staff_with(model, "view"))
    assert name not in offered_actions(client, model)
    before = snapshot(model)
    response = client.post(
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"),
        {"action": name, "_selected_action": [obj.pk], "post": "yes"},
    )

    assert response.status_code in (200, 302)
    assert snapshot(model) == before
