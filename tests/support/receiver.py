"""A local HTTP endpoint that Apprise's real ``json://`` notifier posts to.

Tests wait on its condition variable for messages to arrive (no sleeps), and can make it
answer errors, or hang, to exercise retries.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    title: str
    message: str
    raw: dict[str, Any]
    at: float = 0.0  # time.monotonic() on arrival


class Receiver:
    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.status = 200
        self.failing_paths: set[str] = set()  # channels (paths) that answer 500
        self.attempts = 0
        self.arrived = threading.Event()  # set when any request comes in
        self._released = threading.Event()
        self._released.set()
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if len(raw) < length:
                    # The sender died mid-request (the kill -9 tests): a channel gets no
                    # message from a request cut short, so none is recorded.
                    self.close_connection = True
                    return
                body = json.loads(raw or b"{}")
                receiver.arrived.set()
                receiver._released.wait(30)  # a held receiver is a channel hanging mid-send
                with receiver._cond:
                    receiver.attempts += 1
                    status = (500 if self.path.lstrip("/") in receiver.failing_paths
                              else receiver.status)
                    if status < 300:
                        receiver.messages.append(Received(
                            self.path, body.get("title", ""), body.get("message", ""), body,
                        time.monotonic()))
                    receiver._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "ops") -> str:
        """An Apprise json:// URL posting to this receiver under /``path``."""
        return f"json://127.0.0.1:{self.port}/{path}"

    def hold(self) -> None:
        """Take requests in but answer none until ``release``."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def fail_path(self, path: str) -> None:
        """Answer 500 on one path only: one channel down, the others up."""
        self.failing_paths.add(path)

    def set_status(self, status: int) -> None:
        with self._cond:
            self.status = status

    def messages_to(self, path: str | None) -> list[Received]:
        """The messages received so far on channel ``path`` (all of them for None)."""
        return [m for m in self.messages if path is None or m.path == f"/{path}"]

    def wait_for(self, count: int, *, timeout: float = 20.0, path: str | None = None
                 ) -> list[Received]:
        """Block until ``count`` messages (to ``path``, if given) arrived; return them."""
        def matching() -> list[Received]:
            return self.messages_to(path)

        with self._cond:
            if not self._cond.wait_for(lambda: len(matching()) >= count, timeout):
                got = [m.title for m in matching()]
                raise AssertionError(f"expected {count} messages, got {len(got)}: {got}")
            return matching()

    def wait_for_attempts(self, count: int, *, timeout: float = 20.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.attempts >= count, timeout):
                raise AssertionError(f"expected {count} attempts, got {self.attempts}")

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
