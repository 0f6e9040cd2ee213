"""The periodic tasks beat starts (schedule in `notifications.schedule`): thin wrappers over services."""

from __future__ import annotations

from celery import shared_task

from radgestmat import clock

# Services are imported inside the tasks: this package is imported while Django loads its apps.


@shared_task(name="tasks.check_court_terme_reminders")
def check_court_terme_reminders() -> int:
    """Plan short-loan reminders due before the next run; returns how many went out at once."""
    from notifications import planner

    return planner.check_court_terme_reminders(now=clock.now())


@shared_task(name="tasks.check_moyen_terme_reminders")
def check_moyen_terme_reminders() -> int:
    from notifications import planner

    return planner.check_moyen_terme_reminders(now=clock.now())


@shared_task(name="tasks.check_long_terme_reminders")
def check_long_terme_reminders() -> int:
    from notifications import planner

    return planner.check_long_terme_reminders(now=clock.now())


@shared_task(name="tasks.check_overdue_materials")
def check_overdue_materials() -> int:
    from notifications import planner

    return planner.check_overdue_materials(now=clock.now())


@shared_task(name="tasks.dispatch_due_notifications")
def dispatch_due_notifications() -> dict[str, int]:
    from notifications import relay

    return relay.dispatch_due_notifications(now=clock.now()).as_dict()


@shared_task(name="tasks.cleanup_old_notifications")
def cleanup_old_notifications() -> dict[str, int]:
    from notifications import cleanup

    return cleanup.cleanup_old_notifications(now=clock.now())
