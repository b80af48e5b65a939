"""SQLite is for one daemon: an exclusive lock on ``<database>.lock`` proves it.

The lock is an ``flock`` held for the life of the process, so the kernel drops it when the
process dies in any way (``kill -9`` included): there is no stale lock to clean up. The
file says who holds it, so a second daemon can name the first one when it refuses to start.
Several replicas need PostgreSQL, where leases share the accounts (monitor/ha/coordinator.py).
"""

from __future__ import annotations

import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import make_url

from monitor.core.identity import Identity
from monitor.errors import AlreadyRunning, MonitorError


class SoloLock:
    """The held lock; ``release()`` (or process exit) lets another daemon start."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def lock_sqlite(url: str, me: Identity, *, role: str = "daemon") -> SoloLock | None:
    """Take the one-daemon lock of a SQLite database (None for other databases).

    ``role`` says who takes it: the daemon, or a one-shot command that writes what the
    daemon writes (``poll``, ``db upgrade``, ``db prune``), recorded so that whoever is
    refused next can be told who holds it. Raises AlreadyRunning, naming the holder.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(f"{parsed.database}.lock").resolve()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise MonitorError(f"cannot use the SQLite database {Path(parsed.database).resolve()}: "
                           f"cannot create its lock file {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _describe(os.pread(fd, 4096, 0))
        os.close(fd)
        raise AlreadyRunning(
            f"{holder} is already running on the SQLite database {parsed.database}; SQLite "
            "supports one daemon at a time: stop that one, or use PostgreSQL to run several "
            "replicas", holder=holder) from None
    record = {"replica": me.name, "pid": me.pid, "host": me.host, "role": role,
              "since": datetime.now(UTC).isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    return SoloLock(path, fd)


def _describe(raw: bytes) -> str:
    """Who holds the lock, from what it wrote into the file."""
    try:
        who = json.loads(raw)
        role = who.get("role", "daemon")
        what = ("the reputation-monitor daemon" if role == "daemon"
                else f"`reputation-monitor {role}`")
        return f"{what} (pid {who['pid']} on host {who['host']}, since {who['since']})"
    except (ValueError, KeyError, TypeError, AttributeError):
        return "another reputation-monitor process (its pid was not recorded)"
