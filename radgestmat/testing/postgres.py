"""A throwaway PostgreSQL cluster (initdb) on a free port of 127.0.0.1 (and of other local addresses, for a drill's namespaced machine)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

from radgestmat.testing.net import ServerError, free_port


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the `postgres` account when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PostgresServer:
    """A cluster with one database, ``radgestmat``; stop/start/restart keep its data."""

    def __init__(self, workdir: Path, *, listen: tuple[str, ...] = ("127.0.0.1",)):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise ServerError("PostgreSQL server binaries not found: apt-get install postgresql")
        self.bindir = Path(found[-1]).parent
        self.datadir = Path(workdir) / "pgdata"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/radgestmat"
        self.listen = listen  # the addresses it listens on (the next start takes a change); `url` names 127.0.0.1

    def url_at(self, host: str) -> str:
        """The URL through another of the ``listen`` addresses."""
        return self.url.replace("127.0.0.1", host, 1)

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            _as_postgres_user([str(self.bindir / args[0]), *args[1:]]), check=False, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise ServerError(f"PostgreSQL {args[0]} failed: {(result.stderr or result.stdout).strip()[-300:]}")

    def init(self) -> PostgresServer:
        self.datadir.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.datadir, "postgres", "postgres")
            os.chmod(self.datadir.parent, 0o755)
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        self.start()
        import psycopg

        with psycopg.connect(f"postgres://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE radgestmat")
        return self

    def trust(self, network: str) -> None:
        """Let clients from ``network`` (e.g. "10.213.7.6/32", a namespaced machine) in without a password,
        from the next start on (initdb trusts only the loopback addresses)."""
        hba = self.datadir / "pg_hba.conf"
        line = f"host all all {network} trust\n"
        if line not in hba.read_text():
            with open(hba, "a") as out:
                out.write(line)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.datadir} -c listen_addresses={','.join(self.listen)} -c max_connections=200"
        self._run(
            "pg_ctl", "-D", str(self.datadir), "-o", options, "-l", str(self.datadir / "server.log"), "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """``fast`` disconnects clients cleanly; ``immediate`` is a crash (recovery on the next start)."""
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def restart(self, down_for: float = 0.0, mode: str = "fast") -> None:
        self.stop(mode)
        time.sleep(down_for)
        self.start()

    def destroy(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            with contextlib.suppress(ServerError):
                self.stop("immediate")
