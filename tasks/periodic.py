"""The periodic tasks beat starts (schedule in `notifications.schedule`): thin wrappers over services."""

from __future__ import annotations

import logging

from celery import Task, shared_task

from radgestmat import clock

# Services are imported inside the tasks: this package is imported while Django loads its apps.

logger = logging.getLogger("radgestmat.ops")


class PeriodicRun(Task):
    """Skips a run from beat when beat has published a newer run of the same entry since
    (a worker that was away, or a queue that was backed up): the newer one does the work.
    Runs started otherwise (the watchdog, an admin's "run now", tests) have no number and always run."""

    def __call__(self, *args, **kwargs):
        from radgestmat.beat_scheduler import RUN_HEADER, latest_run

        number = self.request.get(RUN_HEADER)
        entry = self.request.get("periodic_task_name")
        if number is not None and entry:
            try:
                latest = latest_run(entry)
            except Exception:  # noqa: BLE001  without Redis there is no newer run to defer to
                latest = None
            if latest is not None and number < latest:
                logger.info("%s: run %s skipped, run %s of %s was published since", self.name, number, latest, entry)
                return None
        return super().__call__(*args, **kwargs)


@shared_task(base=PeriodicRun, name="tasks.check_court_terme_reminders")
def check_court_terme_reminders() -> int:
    """Plan short-loan reminders due before the next run; returns how many went out at once."""
    from notifications import planner

    return planner.check_court_terme_reminders(now=clock.now())


@shared_task(base=PeriodicRun, name="tasks.check_moyen_terme_reminders")
def check_moyen_terme_reminders() -> int:
    from notifications import planner

    return planner.check_moyen_terme_reminders(now=clock.now())


@shared_task(base=PeriodicRun, name="tasks.check_long_terme_reminders")
def check_long_terme_reminders() -> int:
    from notifications import planner

    return planner.check_long_terme_reminders(now=clock.now())


@shared_task(base=PeriodicRun, name="tasks.check_overdue_materials")
def check_overdue_materials() -> int:
    from notifications import planner

    return planner.check_overdue_materials(now=clock.now())


@shared_task(base=PeriodicRun, name="tasks.dispatch_due_notifications")
def dispatch_due_notifications() -> dict[str, int]:
    from notifications import relay
    from radgestmat.watchdog import note_relay_ran

    note_relay_ran()
    return relay.dispatch_due_notifications(now=clock.now()).as_dict()


@shared_task(base=PeriodicRun, name="tasks.cleanup_old_notifications")
def cleanup_old_notifications() -> dict[str, int]:
    from notifications import cleanup

    return cleanup.cleanup_old_notifications(now=clock.now())
