"""Connection limits of the HTTP server: a cap on open connections and a deadline for the
request head.

uvicorn (0.54) bounds neither: ``timeout_keep_alive`` only runs between requests, a fresh
connection that sends nothing (or one header byte at a time) is kept forever, and
``limit_concurrency`` answers 503 to *every* new request once idle sockets fill it, so
those sockets would lock out ``/healthz`` and Prometheus. Here, per connection:

- a request head must be complete within ``header_timeout`` of the connection opening or
  of the previous response; otherwise the connection is closed (a slow-header client);
- at most ``max_connections`` are open: a new connection past the cap closes the one that
  has been waiting longest without a request in flight (never one being answered), so a
  flood of idle sockets cannot keep a real request out;
- the cap is kept below the process's open-file limit (read from ``/proc/self/limits``:
  the systemd unit's syscall filter forbids the rlimit calls), so ``accept`` never fails
  with EMFILE, which would stall every new connection.

A request in flight is bounded by the guard's ``request_timeout`` and body limits
(monitor/http/guard.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

try:  # the fast parser, when installed (it is in the lock file)
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - httptools missing
    _Base = H11Protocol  # type: ignore[assignment, misc]

log = logging.getLogger(__name__)

# Descriptors kept for everything that is not a client connection (database, log files,
# outgoing API and channel requests), and for the connections accepted in one burst
# before the cap closes others.
RESERVED_FILES = 128


class Limits:
    """The shared book of a server's connections, oldest activity first."""

    def __init__(self, *, max_connections: int, header_timeout: float) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.open: OrderedDict[Any, None] = OrderedDict()
        self.evicted = 0  # closed to make room (for the log)


def fd_budget(max_connections: int, *, limits_file: Path = Path("/proc/self/limits")) -> int:
    """``max_connections``, lowered to fit the soft open-file limit if that is known."""
    try:
        text = limits_file.read_text()
    except OSError:
        return max_connections
    for line in text.splitlines():
        if line.startswith("Max open files"):
            soft = line.split()[3]
            if soft.isdigit() and int(soft) - RESERVED_FILES < max_connections:
                allowed = max(int(soft) - RESERVED_FILES, 8)
                log.warning("server.max_connections %d lowered to %d: the open-file limit "
                            "is %s (raise it: LimitNOFILE= in systemd, ulimit -n)",
                            max_connections, allowed, soft)
                return allowed
    return max_connections


def guarded_protocol(limits: Limits) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class, with ``limits`` applied to its connections."""

    class Guarded(_Base):  # type: ignore[misc, valid-type]
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            limits.open[self] = None
            self._arm()
            if len(limits.open) > limits.max_connections:
                _make_room(limits, newcomer=self)

        def connection_lost(self, exc: Exception | None) -> None:
            limits.open.pop(self, None)
            self._disarm()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self in limits.open:
                limits.open.move_to_end(self)  # waiting for its next request from now
                self._arm()

        def busy(self) -> bool:
            """A request is in flight (its head was read and it is not answered yet)."""
            return self.cycle is not None and not self.cycle.response_complete

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(limits.header_timeout, self._head_overdue)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _head_overdue(self) -> None:
            self._deadline = None
            if not self.busy() and not self.transport.is_closing():
                self.transport.close()

    return Guarded


def _make_room(limits: Limits, *, newcomer: Any) -> None:
    for connection in limits.open:
        if connection is not newcomer and not connection.busy():
            break
    else:
        connection = newcomer  # every other one is being answered: refuse the new one
    limits.open.pop(connection, None)
    connection.transport.close()
    limits.evicted += 1
    if limits.evicted in (1, 100) or limits.evicted % 10_000 == 0:
        log.warning("at server.max_connections (%d): closed %d idle connection(s) so far "
                    "to make room", limits.max_connections, limits.evicted)
