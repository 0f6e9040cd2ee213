"""The quick fault drills (bench/faults), run by `make test`: nothing lost, nothing sent twice.

The drills bring their own PostgreSQL cluster, Redis server, SMTP sink and fake Twilio,
so they run once, in the PostgreSQL pass of CI. `make faults` runs every drill.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

pytestmark = pytest.mark.postgres


@pytest.mark.timeout(900)
def test_quick_fault_drills_lose_nothing_and_send_nothing_twice(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip(
            "the drills run once, in CI's PostgreSQL pass (they start their own cluster); make faults runs them all"
        )
    report = tmp_path / "drills.json"
    run = subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "bench" / "faults" / "run.py"), "--quick", "--json", str(report)],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert report.exists(), f"the drills wrote no report:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    drills = json.loads(report.read_text())["drills"]
    assert drills, "no quick drill ran"
    for result in drills:
        assert "error" not in result, f"{result['drill']}: {result.get('error')}\n{run.stderr[-3000:]}"
        assert result["settled"], f"{result['drill']} did not settle: {result}"
        assert result["lost"] == 0, f"{result['drill']} lost notifications: {result}"
        assert result["sent_twice"] == 0, f"{result['drill']} sent notifications twice: {result}"
        assert result["sent_once"] + result["failed"] == result["notifications"], result
    assert run.returncode == 0, run.stderr[-3000:]
