"""A task for `test_late_soft_limit`: it finishes within its soft time limit and returns a result too
large for the pipe to the worker's main process in one write (the child blocks writing it)."""

from __future__ import annotations

import time

from radgestmat.celery import app


@app.task(name="tests.big_result", ignore_result=True)
def big_result(size: int, seconds: float) -> str:
    time.sleep(seconds)
    return "é" * size
