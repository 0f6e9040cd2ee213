"""gunicorn started as the Procfile starts it: its access log holds paths, never query strings or addresses."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from radgestmat.testing.net import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = "camille.martin@example.org"


def procfile_command(role: str) -> str:
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith(f"{role}:"))
    return line.partition(":")[2].strip()


def fetch(url: str) -> int:
    request = urllib.request.Request(url, headers={"Referer": f"http://127.0.0.1/clients/?q={ADDRESS}"})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_the_access_log_drops_query_strings_and_masks_addresses(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_SETTINGS")}
    env.update(
        DEBUG="1",
        WEB_BIND=f"127.0.0.1:{port}",
        WEB_WORKERS="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'web.sqlite3'}",
        PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    )
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {procfile_command('web')}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: fetch(f"http://127.0.0.1:{port}/login/") == 200, what="gunicorn", timeout=60)
        assert fetch(f"http://127.0.0.1:{port}/clients/?q={ADDRESS}") == 302
        assert fetch(f"http://127.0.0.1:{port}/login/?next=/clients/%3Fq%3D{ADDRESS}&phone=%2B33612345678") == 200
        assert fetch(f"http://127.0.0.1:{port}/no-such-page/{ADDRESS}/") == 404
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)

    output = log_path.read_text()
    access_lines = [line for line in output.splitlines() if '"GET ' in line]
    assert len(access_lines) >= 4, output
    assert any('"GET /clients/ HTTP/1.1" 302' in line for line in access_lines), access_lines
    assert any("/no-such-page/c***@example.org/" in line for line in access_lines), access_lines
    for secret in (ADDRESS, "camille.martin%40example.org", "612345678", "?q=", "?next="):
        assert secret not in output, f"{secret!r} in gunicorn's output:\n{output}"
