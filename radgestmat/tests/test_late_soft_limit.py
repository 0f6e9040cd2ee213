"""A soft time limit that fires after its task finished must not kill the worker.

The worker's main process sends the soft limit (SIGUSR1) on a timer of its event loop. While that
loop stalls (reconnecting to a broker cut off by the network: bench/faults drill
`worker-cut-off-all`), a child that finished its task blocks writing its result to the main
process; when the loop resumes, the timer fires late, into that write. The child then wrote a
second message into the first and the main process died on it ("Unrecoverable error:
UnicodeDecodeError"); or the signal reached the idle child and killed it, and its finished task was
redelivered as lost. Here the stall is a SIGSTOP of the main process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from radgestmat.testing.net import wait_until
from radgestmat.testing.processes import stop_group
from radgestmat.testing.redis import redis_server


def test_a_late_soft_time_limit_does_not_garble_a_finished_tasks_result(tmp_path):
    with redis_server(tmp_path) as (_, port):
        broker = f"redis://127.0.0.1:{port}/0"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
        env.update(
            DJANGO_SETTINGS_MODULE="radgestmat.settings",
            REDIS_URL=broker,
            CELERY_BROKER_URL=broker,
            DATABASE_URL=f"sqlite:///{tmp_path / 'late.sqlite3'}",
        )
        log = tmp_path / "worker.log"
        with open(log, "w") as out:
            worker = subprocess.Popen(
                [
                    *(sys.executable, "-m", "celery", "-A", "radgestmat.tests.celery_late_limit", "worker"),
                    *("--pool=prefork", "--concurrency=1", "-Q", "latelimit", "-n", "latelimit@%h", "-l", "INFO"),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(lambda: " ready." in log.read_text(), what="the worker to be ready", timeout=60)
            from radgestmat.tests.celery_late_limit import app

            def send(size: int, seconds: float) -> None:
                with app.connection_for_write(broker) as connection:
                    app.send_task(
                        "tests.big_result",
                        args=(size, seconds),
                        queue="latelimit",
                        soft_time_limit=2,
                        time_limit=120,
                        connection=connection,
                    )

            send(1_000_000, 1.0)  # 2 MB of two-byte characters, far more than a pipe holds; 1 s, under the 2 s limit
            wait_until(lambda: "tests.big_result" in log.read_text(), what="the task to start", timeout=30)
            time.sleep(0.3)
            worker.send_signal(signal.SIGSTOP)  # the main process stalls; the task finishes meanwhile
            time.sleep(4)  # past the soft limit
            worker.send_signal(signal.SIGCONT)
            # The only child is free again once the main process has read the first result whole.
            send(10, 0.0)
            try:
                wait_until(
                    lambda: log.read_text().count("succeeded") >= 2 or worker.poll() is not None,
                    what="both tasks to finish",
                    timeout=60,
                )
            except AssertionError:
                raise AssertionError(log.read_text()[-3000:]) from None
            time.sleep(1)
            output = log.read_text()
            assert "Unrecoverable error" not in output, output[-3000:]
            assert worker.poll() is None, output[-3000:]
            # Nor may the late signal kill the child (its finished task would be redelivered as lost).
            assert "error: SoftTimeLimitExceeded" not in output, output[-3000:]
            assert "exited with" not in output, output[-3000:]
        finally:
            worker.send_signal(signal.SIGCONT)
            stop_group(worker)
