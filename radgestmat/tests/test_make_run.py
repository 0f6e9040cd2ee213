"""`make run` starts the whole stack: the web port answers with the login page, then it stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from radgestmat.testing.net import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_make_run_serves_the_login_page(tmp_path):
    web_port = free_port()
    env = {
        **os.environ,
        "WEB_BIND": f"127.0.0.1:{web_port}",
        "FLOWER_PORT": str(free_port()),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}",
        "DEBUG": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = tmp_path / "make-run.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["make", "run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 180
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/login/", timeout=2) as response:
                    status = response.status
                    body = response.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert status == 200, f"web never answered; make run said:\n{log.read_text()[-3000:]}"
        assert "RadGestMat" in body
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    output = log.read_text()
    assert "Log in as “demo”" in output
    for role in ("web.1", "worker.1", "beat.1", "flower.1"):
        assert role in output, f"{role} did not start"
