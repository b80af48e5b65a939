"""A TCP front for a local server that fails the way networks do, on a fixed port.

Modes (``proxy.mode = ...``; switching drops every open connection, so a pooled
keep-alive connection cannot bypass the new fault):
- ``pass``: forward both ways;
- ``refuse``: nothing listens on the port (the client gets ECONNREFUSED), but the port
  stays reserved: a socket bound to it (SO_REUSEPORT, never listening) is held for the
  proxy's life, so no other test's receiver, run in parallel, can be handed the port and
  take the messages meant for this fault;
- ``blackhole``: the port listens but never accepts and its backlog is full, so a new
  connection's SYN goes unanswered (the client's connect times out);
- ``hang``: connections are accepted, requests read, nothing ever answered (read timeout);
- ``cut``: the answer's first ``cut_after`` bytes are forwarded, then the connection
  closes (a body shorter than its Content-Length).
"""

from __future__ import annotations

import contextlib
import socket
import threading


class FaultProxy:
    def __init__(self, upstream_port: int, *, cut_after: int = 400) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self._reserved = socket.socket()
        self._reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self._reserved.bind(("127.0.0.1", 0))
        self.port = int(self._reserved.getsockname()[1])
        self.cut_after = cut_after
        self._mode = "pass"
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._fillers: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        assert mode in ("pass", "refuse", "blackhole", "hang", "cut"), mode
        with self._lock:
            self._mode = mode
            for sock in (*self._open, *self._fillers):
                _close(sock)
            self._open.clear()
            self._fillers.clear()
            if self._listener is not None:
                _close(self._listener)
                self._listener = None
            if mode == "refuse":
                return
            self._listener = _listen(self.port, backlog=0 if mode == "blackhole" else 64)
            if mode == "blackhole":
                # Fill the accept queue (backlog 0 holds one); later SYNs are dropped.
                for _ in range(2):
                    filler = socket.socket()
                    filler.setblocking(False)
                    with contextlib.suppress(BlockingIOError):
                        filler.connect(("127.0.0.1", self.port))
                    self._fillers.append(filler)
                return
            threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def __enter__(self) -> FaultProxy:
        self.mode = "pass"
        return self

    def __exit__(self, *exc: object) -> None:
        self.mode = "refuse"
        _close(self._reserved)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed by a mode change
            with self._lock:
                if listener is not self._listener:
                    _close(client)
                    return
                self._open.add(client)
                mode = self._mode
            threading.Thread(target=self._serve, args=(client, mode), daemon=True).start()

    def _serve(self, client: socket.socket, mode: str) -> None:
        if mode == "hang":
            return  # kept open, never answered, closed at the next mode change
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError:
            _close(client)
            return
        with self._lock:
            self._open.add(upstream)
        limit = self.cut_after if mode == "cut" else None
        threading.Thread(target=_pump, args=(client, upstream, None), daemon=True).start()
        _pump(upstream, client, limit)


def _listen(port: int, *, backlog: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # beside the reservation
    sock.bind(("127.0.0.1", port))
    sock.listen(backlog)
    return sock


def _pump(source: socket.socket, sink: socket.socket, limit: int | None) -> None:
    """Copy ``source`` to ``sink`` (at most ``limit`` bytes), then close both."""
    sent = 0
    try:
        while limit is None or sent < limit:
            data = source.recv(65536 if limit is None else min(65536, limit - sent))
            if not data:
                break
            sink.sendall(data)
            sent += len(data)
    except OSError:
        pass
    finally:
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
