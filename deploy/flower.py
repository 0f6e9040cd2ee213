#!/usr/bin/env python3
"""Start Flower for RadGestMat, never open to the world.

    python deploy/flower.py            # Procfile role `flower`, systemd unit radgestmat-flower

Environment:
  FLOWER_BASIC_AUTH   user:password[,user2:password2]  required (passwords of 12+ characters, not common ones):
                      nginx proxies /flower/ to the loopback port, so binding 127.0.0.1 protects nothing
  FLOWER_LOCAL_ONLY   1: no password needed, for a Flower on 127.0.0.1 that no proxy forwards to (make run)
  FLOWER_ADDRESS      interface to bind (default 127.0.0.1; nginx proxies /flower/ to it)
  FLOWER_PORT         default 5555
  FLOWER_URL_PREFIX   default "flower": Flower answers under /flower/, as behind the nginx site

The credentials reach Flower through its own FLOWER_BASIC_AUTH variable rather than
``--basic-auth`` on the command line, where any local user could read them in `ps`.
Every other FLOWER_* variable is dropped (Flower would read them as options, and
FLOWER_UNAUTHENTICATED_API would open its API without a password).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from radgestmat.flower_auth import refusal  # noqa: E402


def flower_command(environ: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The argv and environment to exec Flower with; raises SystemExit with one line when it must not start."""
    address = environ.get("FLOWER_ADDRESS", "127.0.0.1")
    port = environ.get("FLOWER_PORT", "5555")
    prefix = environ.get("FLOWER_URL_PREFIX", "flower").strip("/")
    basic_auth = environ.get("FLOWER_BASIC_AUTH", "").strip()
    reason = refusal(environ)
    if reason:
        raise SystemExit(reason)
    argv = [sys.executable, "-m", "celery", "-A", "radgestmat", "flower", f"--address={address}", f"--port={port}"]
    if prefix:
        argv.append(f"--url_prefix={prefix}")
    env = {key: value for key, value in environ.items() if not key.startswith("FLOWER_")}
    if basic_auth:
        env["FLOWER_BASIC_AUTH"] = basic_auth
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH", "")]))
    return argv, env


def main() -> None:
    argv, env = flower_command(dict(os.environ))
    os.chdir(ROOT)
    os.execve(argv[0], argv, env)


if __name__ == "__main__":
    main()
