"""Limits every HTTP endpoint shares: body size, a deadline, and optional bearer auth.

Pure ASGI (no BaseHTTPMiddleware), so the streamed /metrics body passes through as is.
- A body larger than ``max_body`` (or the path's own limit in ``body_limits``) is refused
  with 413: at once when Content-Length says
  so, otherwise as soon as the bytes read pass the limit (a chunked upload cannot grow
  memory without bound).
- A request not answered within ``timeout`` gets 503 (if nothing was sent yet), so a
  slow client or a stuck handler cannot hold a connection and its memory forever.
- Paths under ``protected`` need ``Authorization: Bearer <token>``, compared in constant
  time; the token is never logged or echoed.
- With ``allowed_hosts``, every path except those in ``host_exempt`` (exact paths: probes
  and Linq's deliveries, which come by address or through a proxy) answers only requests
  whose ``Host`` header names one of them (421 otherwise): a page on another site that
  rebinds its own DNS name to this address cannot read ``/metrics``, the gate or the
  status page through a browser.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable, Mapping, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    pass


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        timeout: float,
        token: str | None = None,
        protected: Sequence[str] = (),
        on_too_large: Callable[[str], None] = lambda path: None,
        body_limits: Mapping[str, int] | None = None,
        allowed_hosts: Sequence[str] = (),
        host_exempt: Sequence[str] = (),
    ) -> None:
        self.app = app
        self._hosts = frozenset(h.lower() for h in allowed_hosts)
        # Exact paths, not prefixes: the status page's /health must not pass as /healthz.
        self._host_exempt = frozenset(host_exempt)
        self.max_body = max_body
        self._body_limits = dict(body_limits or {})  # exact path -> a tighter limit
        self.timeout = timeout
        self._token = token.encode() if token else None
        self._protected = tuple(protected)
        self._on_too_large = on_too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if self._hosts and path not in self._host_exempt and not self._host_allowed(scope):
            await _plain(send, 421, b"misdirected request: this host name is not served\n")
            return
        if self._token is not None and path.startswith(self._protected) and not self._authorised(
                scope):
            await _plain(send, 401, b"unauthorized\n",
                         extra=[(b"www-authenticate", b'Bearer realm="reputation-monitor"')])
            return
        max_body = self._body_limits.get(path, self.max_body)
        declared = _content_length(scope)
        if declared is not None and declared > max_body:
            self._on_too_large(path)
            await _plain(send, 413, b"request body too large\n")
            return
        started = False
        too_large = False
        received = 0

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:
                    too_large = True
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if too_large:
                # Starlette's error middleware answers the BodyTooLarge it saw with a 500
                # before re-raising it: the client gets the 413 below instead.
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            async with asyncio.timeout(self.timeout):
                await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            pass
        except TimeoutError:
            if not started:
                await _plain(send, 503, b"request timed out\n")
        if too_large:  # raised through the app, or swallowed by it
            self._on_too_large(path)
            if not started:
                await _plain(send, 413, b"request body too large\n")

    def _host_allowed(self, scope: Scope) -> bool:
        """True if the Host header (with or without its port) is an allowed host."""
        for name, value in scope.get("headers", []):
            if name == b"host":
                host = value.decode("latin-1").strip().lower()
                bare = host.rsplit(":", 1)[0] if not host.endswith("]") else host
                return host in self._hosts or bare in self._hosts
        return False

    def _authorised(self, scope: Scope) -> bool:
        assert self._token is not None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(
                    credentials.strip(), self._token)
        return False


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _plain(send: Send, status: int, body: bytes,
                 extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
