"""Drills on the servers everything stands on: Redis restarted, PostgreSQL restarted or crashed, two beats at once."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

from bench.faults.lab import Lab, drill
from bench.stack import Stack, wait_until

STAFF_USERNAME = "drill-staff"
STAFF_PASSWORD = "drill-staff-password-0123"
HTTP_TIMEOUT = 30.0


def sent(stack: Stack) -> int:
    return stack.smtp.count + stack.twilio.count


def staff_user():
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username=STAFF_USERNAME, defaults={"email": "staff@example.org"})
    user.is_staff = True
    user.is_active = True
    user.set_password(STAFF_PASSWORD)
    user.save()
    return user


class StaffBrowser:
    """A staff member's browser session on the web process: log in, lend through the lend form."""

    def __init__(self, base_url: str):
        import requests

        self.base_url = base_url
        self.session = requests.Session()

    def _csrf(self, path: str) -> str:
        page = self.session.get(self.base_url + path, timeout=HTTP_TIMEOUT)
        page.raise_for_status()
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)

    def login(self) -> tuple[int, float, bool]:
        """(status, seconds, logged in) of posting the login form."""
        token = self._csrf("/login/")
        began = time.monotonic()
        answer = self.session.post(
            self.base_url + "/login/",
            data={"username": STAFF_USERNAME, "password": STAFF_PASSWORD, "csrfmiddlewaretoken": token},
            timeout=HTTP_TIMEOUT,
            allow_redirects=False,
        )
        return answer.status_code, time.monotonic() - began, answer.status_code == 302

    def lend(self, code: str, client_label: str, due_local: str) -> tuple[int, float]:
        """(status, seconds) of posting the lend form; 302 to the loan's page is a saved loan."""
        token = self._csrf("/loans/new/")
        began = time.monotonic()
        answer = self.session.post(
            self.base_url + "/loans/new/",
            data={
                "materiel": code,
                "client": client_label,
                "date_retour_prevue": due_local,
                "notes": "",
                "csrfmiddlewaretoken": token,
            },
            timeout=HTTP_TIMEOUT,
            allow_redirects=False,
        )
        return answer.status_code, time.monotonic() - began


@dataclass
class Probe:
    """Polls web pages every half second from a thread: status codes (or errors) and the slowest answer."""

    base_url: str
    paths: tuple[str, ...] = ("/login/", "/healthz")
    answers: dict[str, list[tuple[float, object]]] = field(default_factory=dict)
    slowest: dict[str, float] = field(default_factory=dict)
    broker_seen: list[tuple[float, bool]] = field(default_factory=list)  # /healthz: Redis and a worker answered
    stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Probe:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        import requests

        while not self.stopping.is_set():
            for path in self.paths:
                began = time.monotonic()
                try:
                    answer = requests.get(self.base_url + path, timeout=HTTP_TIMEOUT)
                    outcome: object = answer.status_code
                    if path == "/healthz" and answer.status_code in (200, 503):
                        checks = answer.json()["checks"]
                        self.broker_seen.append((began, checks["redis"]["ok"] and checks["workers"]["ok"]))
                except requests.RequestException as exc:
                    outcome = type(exc).__name__
                took = time.monotonic() - began
                self.answers.setdefault(path, []).append((began, outcome))
                self.slowest[path] = max(self.slowest.get(path, 0.0), took)
            self.stopping.wait(0.5)

    def stop(self) -> None:
        self.stopping.set()

    def outcomes(self, path: str, since: float = 0.0, until: float = float("inf")) -> dict[object, int]:
        counts: dict[object, int] = {}
        for at, outcome in self.answers.get(path, []):
            if since <= at <= until:
                counts[outcome] = counts.get(outcome, 0) + 1
        return counts

    def broker_back(self, since: float) -> float | None:
        """When /healthz first saw Redis and a worker answering again after ``since``."""
        return next((at for at, ok in self.broker_seen if at >= since and ok), None)


def desk_loans(lab: Lab, count: int) -> list[tuple[str, str, int]]:
    """Material and clients for loans lent through the web: (material code, client label, client id)."""
    from assets.forms import client_label
    from assets.models import Client, Materiel
    from notifications.models import NotificationPreferences

    desk = []
    for _ in range(count):
        lab.serial += 1
        n = lab.serial
        client = Client.objects.create(name=f"Guichet {n}", email=f"desk{n}@example.org", phone=f"+336{n:08d}")
        NotificationPreferences.objects.create(client=client, notifications_whatsapp=True)  # opt-in
        materiel = Materiel.objects.create(code=f"DESK-{n:06d}", name="Trépied")
        desk.append((materiel.code, client_label(client), client.pk))
    return desk


def creation_rows_of_clients(client_ids: list[int]) -> list[int]:
    from notifications.models import NotificationLog, TypeNotification

    return list(
        NotificationLog.objects.filter(
            attribution__client_id__in=client_ids, type_notification=TypeNotification.CREATION
        ).values_list("pk", flat=True)
    )


def local_due(days: int = 5) -> str:
    from django.utils import timezone

    return timezone.localtime(timezone.now() + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")


def summary(outcomes: dict[object, int]) -> str:
    return "/".join(f"{count}x{outcome}" for outcome, count in sorted(outcomes.items(), key=str))


@drill("redis-restarted", "Redis restarted (empty) mid-run; staff lend during the outage", quick=False)
def redis_restarted(lab: Lab) -> dict:
    """Redis goes away for ``down_for`` seconds with hundreds of messages queued, and comes back
    empty (no persistence). Staff keep lending through the web meanwhile. The relay must send
    what Redis lost and what could not be enqueued; web, worker and beat reconnect by themselves."""
    down_for = 20.0
    stack = lab.stack
    staff_user()
    stack.beat()
    web = stack.web()
    desk = desk_loans(lab, 8)
    browser = StaffBrowser(web.url)
    status, _, ok = browser.login()
    if not ok:
        raise AssertionError(f"staff could not log in before the fault (HTTP {status})")
    probe = Probe(web.url).start()
    started = time.monotonic()
    root_ids = lab.lend(300)  # queued in Redis: the worker starts after
    stack.worker("w1", concurrency=2)
    wait_until(lambda: sent(stack) >= 40, what="the first sends", timeout=60)
    sent_at_stop = sent(stack)
    lab.redis.stop()
    down_at = time.monotonic()
    during = [browser.lend(code, label, local_due()) for code, label, _ in desk[:5]]
    login_during = StaffBrowser(web.url).login()
    time.sleep(max(0.0, down_for - (time.monotonic() - down_at)))
    lab.redis.start()
    up_at = time.monotonic()
    after = [browser.lend(code, label, local_due()) for code, label, _ in desk[5:]]
    root_ids += creation_rows_of_clients([client_id for _, _, client_id in desk])
    result = lab.settle(root_ids, started)
    probe.stop()
    broker_back = probe.broker_back(up_at)
    worst_lend = max(seconds for _, seconds in during)
    healthz_during = probe.outcomes("/healthz", down_at, up_at)
    result["web"] = {
        "lend_during": [status for status, _ in during],
        "lend_during_max_s": round(worst_lend, 2),
        "lend_after": [status for status, _ in after],
        "login_during": {"status": login_during[0], "seconds": round(login_during[1], 2), "ok": login_during[2]},
        "login_page": probe.outcomes("/login/"),
        "healthz": probe.outcomes("/healthz"),
        "healthz_during": healthz_during,
        "broker_and_worker_back_after_s": round(broker_back - up_at, 1) if broker_back else None,
        "slowest_s": {path: round(seconds, 2) for path, seconds in probe.slowest.items()},
    }
    problems = []
    if any(status != 302 for status, _ in during + after):
        problems.append(f"a lend through the web did not save and redirect: {during + after}")
    if not login_during[2]:
        problems.append(f"staff could not log in while Redis was down (HTTP {login_during[0]})")
    if set(probe.outcomes("/login/")) != {200}:
        problems.append(f"the login page did not always answer 200: {probe.outcomes('/login/')}")
    if not set(probe.outcomes("/healthz")) <= {200, 503}:
        problems.append(f"/healthz answered something else than 200/503: {probe.outcomes('/healthz')}")
    if broker_back is None:
        problems.append("/healthz never saw Redis and a worker answering again")
    result["problems"] = problems
    result["notes"] = (
        f"Redis down {down_for:.0f} s after {sent_at_stop} of {len(root_ids)} sent; web lends during: "
        f"{summary(_statuses(during))} (slowest {worst_lend:.1f} s), after: {summary(_statuses(after))}; "
        f"staff login during: {'ok' if login_during[2] else login_during[0]}; /login/ "
        f"{summary(probe.outcomes('/login/', down_at, up_at))} during; /healthz during {summary(healthz_during)}, "
        f"Redis+worker ok again {result['web']['broker_and_worker_back_after_s']} s after restart"
    )
    return result


def _statuses(answers: list[tuple[int, float]]) -> dict[object, int]:
    counts: dict[object, int] = {}
    for status, _ in answers:
        counts[status] = counts.get(status, 0) + 1
    return counts


def reconnect_here() -> None:
    """The driver's own connection died with the server: the next query opens a new one."""
    from django.db import connection

    connection.close()


def postgres_drill(lab: Lab, *, mode: str, down_for: float) -> dict:
    """Two workers sending to a slow SMTP server (every message takes a moment to be accepted, so
    sends are in flight), PostgreSQL stopped in ``mode`` for ``down_for`` seconds, then started."""
    stack = lab.stack
    stack.smtp.delay = 0.3
    try:
        stack.beat()
        root_ids = lab.lend(200)
        started = time.monotonic()
        stack.worker("w1", concurrency=2)
        stack.worker("w2", concurrency=2)
        wait_until(lambda: sent(stack) >= 40, what="the first sends", timeout=60)
        sent_at_stop = sent(stack)
        lab.postgres.stop(mode)
        time.sleep(down_for)
        lab.postgres.start()
        reconnect_here()
        result = lab.settle(root_ids, started)
    finally:
        stack.smtp.delay = 0.0
    from notifications.models import NotificationLog

    result["second_attempts"] = NotificationLog.objects.filter(pk__in=root_ids, nb_tentatives__gt=1).count()
    alive = [proc.name for proc in stack.processes if proc.alive()]
    result["problems"] = [] if len(alive) == 3 else [f"processes died: only {alive} alive"]
    result["notes"] = (
        f"PostgreSQL stopped ({mode}) for {down_for:.0f} s after {sent_at_stop} of {len(root_ids)} sent "
        f"(SMTP takes 0.3 s per message); {result['second_attempts']} needed another attempt"
    )
    return result


@drill("postgres-restarted", "PostgreSQL restarted (fast shutdown) mid-send", quick=False)
def postgres_restarted(lab: Lab) -> dict:
    return postgres_drill(lab, mode="fast", down_for=3.0)


@drill("postgres-crashed", "PostgreSQL crashed (immediate shutdown, recovery on start) mid-send", quick=False)
def postgres_crashed(lab: Lab) -> dict:
    return postgres_drill(lab, mode="immediate", down_for=3.0)


CHECKS = (
    "check_court_terme_reminders",
    "check_moyen_terme_reminders",
    "check_long_terme_reminders",
    "check_overdue_materials",
)
CHECK_EVERY_SECONDS = 10


def tick_checks_every(seconds: int | None, saved: dict | None = None) -> dict:
    """Put the checks' beat entries on an interval of ``seconds`` (as an admin would in the admin);
    with ``saved`` (what the first call returned), put them back as they were."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

    entries = PeriodicTask.objects.filter(name__in=CHECKS)
    previous = {entry.name: (entry.crontab_id, entry.interval_id) for entry in entries}
    if saved is not None:
        for name, (crontab_id, interval_id) in saved.items():
            PeriodicTask.objects.filter(name=name).update(crontab_id=crontab_id, interval_id=interval_id)
    else:
        every, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
        entries.update(crontab=None, interval=every)
    PeriodicTasks.update_changed()
    return previous


def rows_of(creation_ids: list[int], type_notification: str) -> list[int]:
    """The rows of one type of the loans whose CREATION rows are ``creation_ids``."""
    from notifications.models import NotificationLog

    loans = NotificationLog.objects.filter(pk__in=creation_ids).values("attribution_id")
    return list(
        NotificationLog.objects.filter(attribution_id__in=loans, type_notification=type_notification).values_list(
            "pk", flat=True
        )
    )


def runs_of(task_names: tuple[str, ...]) -> dict[str, int]:
    from django_celery_results.models import TaskResult

    return {name: TaskResult.objects.filter(task_name=f"tasks.{name}").count() for name in task_names}


@drill(
    "two-beats",
    "Two beats at once for two minutes while loans are lent and reminders/overdue alerts fall due",
    quick=False,
)
def two_beats(lab: Lab) -> dict:
    """Both beats start the relay every 5 s and every check every 10 s, so each runs twice per tick.
    CREATION of 100 loans (half with WhatsApp), a RAPPEL_2H of 15 short loans planned at lending,
    and a RETARD of 15 loans due 40 s after lending that only the overdue check plans (grace 0):
    all by email except CREATION, so the ledger's match by phone stays one message per borrower."""
    from notifications.models import TypeNotification
    from radgestmat.beat_registry import live_beat_instances

    stack = lab.stack
    stack.settings["OVERDUE_GRACE_MINUTES"] = "0"
    saved = tick_checks_every(CHECK_EVERY_SECONDS)
    try:
        first = stack.beat("beat-a")
        stack.beat("beat-b")
        stack.worker("w1", concurrency=2)
        stack.worker("w2", concurrency=2)
        wait_until(lambda: len(live_beat_instances()) == 2, what="both beats' heartbeats", timeout=60)
        started = time.monotonic()
        root_ids = lab.lend(100)
        reminded = lab.lend(15, with_phone=0, due_in=timedelta(hours=2, seconds=75))
        overdue = lab.lend(15, with_phone=0, due_in=timedelta(seconds=40), started_ago=timedelta(hours=1))
        root_ids += reminded + overdue
        reminders = rows_of(reminded, TypeNotification.RAPPEL_2H)

        def planned_alerts() -> list[int] | None:
            rows = rows_of(overdue, TypeNotification.RETARD)
            return rows if len(rows) >= len(overdue) else None

        alerts = wait_until(planned_alerts, what="the overdue check to plan one RETARD per late loan", timeout=60)
        root_ids += reminders + alerts
        time.sleep(max(0.0, 120 - (time.monotonic() - started)))  # both beats on, past every due time
        runs = runs_of(("dispatch_due_notifications", "check_overdue_materials", "check_court_terme_reminders"))
        first.stop()
        result = lab.settle(root_ids, started)
    finally:
        tick_checks_every(None, saved)
    problems = []
    if len(reminders) != len(reminded):
        problems.append(f"{len(reminders)} RAPPEL_2H planned for {len(reminded)} short loans")
    if len(alerts) != len(overdue):
        problems.append(f"{len(alerts)} RETARD planned for {len(overdue)} late loans")
    result["runs_with_two_beats"] = runs
    result["problems"] = problems
    result["notes"] = (
        f"two beats for 120 s: relay ran {runs['dispatch_due_notifications']}x, overdue check "
        f"{runs['check_overdue_materials']}x (every 5 s / 10 s each); {len(root_ids) - len(reminders) - len(alerts)} "
        f"CREATION, {len(reminders)} RAPPEL_2H, {len(alerts)} RETARD"
    )
    return result
