"""A private, throw-away PostgreSQL cluster that a test may stop and restart at will.

The shared server on 127.0.0.1:5432 is used by every other test and must never be
stopped; outage tests get their own cluster instead: ``initdb`` into a temporary
directory, ``pg_ctl`` on a free port, trust authentication on loopback only. As root,
the server binaries run as the ``postgres`` user (PostgreSQL refuses to run as root).
Skips the test when no server binaries are found, unless ``REQUIRE_POSTGRES=1``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.support.daemon import free_port


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class PgCluster:
    def __init__(self) -> None:
        bindir = _bindir()
        if bindir is None:
            if os.environ.get("REQUIRE_POSTGRES") == "1":
                pytest.fail("REQUIRE_POSTGRES=1 but no PostgreSQL server binaries (pg_ctl)")
            pytest.skip("no PostgreSQL server binaries (pg_ctl) for a private cluster")
        self._bin = bindir
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        # Not under pytest's tmp_path: the postgres user must be able to reach it.
        self.root = Path(tempfile.mkdtemp(prefix="rm-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        return subprocess.run([*self._as_postgres, str(self._bin / "pg_ctl"), "-D",
                               str(self.data), "status"], capture_output=True).returncode == 0

    def destroy(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run([*self._as_postgres, str(self._bin / tool), *args],
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            server_log = self.log.read_text() if self.log.exists() else ""
            raise AssertionError(f"{tool} failed: {result.stderr}{result.stdout}\n{server_log}")
