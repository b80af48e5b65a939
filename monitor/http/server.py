"""The HTTP endpoints: /metrics, /healthz, /readyz, and mounts the gate API, the webhook
endpoint and the status page (monitor/http/pages.py). Runs inside the daemon's event loop.

/readyz is 503 with its reasons while the database is unreachable, an account this replica
polls has had no good poll for ``stale_after``, or push is broken (an account's webhook
subscription missing, inactive or pointing elsewhere; signed webhooks being rejected).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Protocol

import uvicorn
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from monitor.config import Config
from monitor.core.directory import LineDirectory
from monitor.http.connections import Limits, fd_budget, guarded_protocol
from monitor.http.gate import gate_mount
from monitor.http.guard import Guard
from monitor.http.pages import page_routes
from monitor.http.webhooks import MAX_BODY as WEBHOOK_MAX_BODY
from monitor.http.webhooks import PATH as WEBHOOK_PATH
from monitor.http.webhooks import webhook_routes
from monitor.metrics import CONTENT_TYPE, Metrics, stream
from monitor.store.engine import ping
from monitor.webhooks.liveness import PushWatch
from monitor.webhooks.process import WebhookProcessor


class PollHealth(Protocol):
    """An account's poll as /readyz judges it."""

    @property
    def last_success_at(self) -> datetime | None: ...

    @property
    def last_error(self) -> str | None: ...


class Runtime(Protocol):
    """What the server reads of the running service (``service.runtime.Runtime``)."""

    @property
    def config(self) -> Config: ...

    @property
    def engine(self) -> Engine: ...

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def webhooks(self) -> WebhookProcessor: ...

    @property
    def directory(self) -> LineDirectory: ...

    @property
    def pollers(self) -> Mapping[str, PollHealth]: ...

    @property
    def push(self) -> PushWatch: ...


def build_app(runtime: Runtime, *, started_at: datetime,
              held_since: Callable[[str], datetime | None] | None = None) -> ASGIApp:
    """The app. ``held_since(account)``: when this replica took the account's lease (None:
    another replica polls it, so its staleness is not this replica's readiness)."""
    # The per-line block (re-rendering what changed since the last scrape, all of it the
    # first time) on a thread of its own, so a scrape never holds the event loop. Its own:
    # glibc gives each thread an arena, and rendered blocks (~70 MB at 100k lines, each
    # replaced when its lines change) allocated on the threads that also parse a poll's
    # answer spread over their arenas between the poll's big transient buffers: ~10 MB
    # more RSS over ten polls (bench/RESULTS.md). The thread ends with the app.
    renderer = ThreadPoolExecutor(1, thread_name_prefix="metrics")

    async def metrics(_: Request) -> Response:
        # The rest on the loop, where polls update it. Then stream it: at 100k lines the
        # text is ~70 MB, and one big join would cost more than the whole send.
        lines = await asyncio.get_running_loop().run_in_executor(
            renderer, runtime.metrics.line_series.pieces)
        pieces = runtime.metrics.pieces(lines=lines)

        async def body() -> AsyncIterator[bytes]:
            for chunk in stream(pieces):
                yield chunk

        return StreamingResponse(body(), media_type=CONTENT_TYPE)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(_: Request) -> Response:
        reasons = await _not_ready_reasons(runtime, started_at=started_at,
                                           held_since=held_since)
        body = {"ready": not reasons, "reasons": reasons}
        return JSONResponse(body, status_code=503 if reasons else 200)

    server = runtime.config.server
    token = server.api_token.get_secret_value() if server.api_token else None
    app = Starlette(routes=[
        Route("/metrics", metrics),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *webhook_routes(runtime.webhooks, runtime.metrics, runtime.push),
        gate_mount(runtime.directory, runtime.sessions),
        *page_routes(runtime, token=token),  # the status page checks the token itself
    ])
    return Guard(app, max_body=server.max_body_bytes,
                 body_limits={WEBHOOK_PATH: min(WEBHOOK_MAX_BODY, server.max_body_bytes)},
                 timeout=server.request_timeout.total_seconds(), token=token,
                 protected=("/api/", "/metrics") if server.protect_metrics else ("/api/",),
                 on_too_large=lambda path: _count_too_large(runtime, path),
                 allowed_hosts=server.allowed_hosts,
                 host_exempt=("/healthz", "/readyz", WEBHOOK_PATH))


def _count_too_large(runtime: Runtime, path: str) -> None:
    if path == WEBHOOK_PATH:
        runtime.metrics.webhooks.labels("too_large").inc()


async def _not_ready_reasons(runtime: Runtime, *, started_at: datetime,
                             held_since: Callable[[str], datetime | None] | None
                             ) -> list[str]:
    reasons: list[str] = []
    try:
        await asyncio.wait_for(asyncio.to_thread(ping, runtime.engine), timeout=5)
    except (SQLAlchemyError, TimeoutError) as exc:
        reasons.append(f"database unreachable: {type(exc).__name__}")
    now = datetime.now(UTC)
    stale_after = runtime.config.alerts.stale_after
    for name, poller in runtime.pollers.items():
        polled_since = held_since(name) if held_since is not None else started_at
        if polled_since is None:
            continue
        last = poller.last_success_at or polled_since
        if now - last > stale_after:
            since = "ever" if poller.last_success_at is None else f"since {last.isoformat()}"
            error = f" (last error: {poller.last_error})" if poller.last_error else ""
            reasons.append(f"account {name}: no successful poll {since}{error}")
    held = [name for name in runtime.pollers
            if held_since is None or held_since(name) is not None]
    reasons += runtime.push.reasons(held)
    return reasons


class EmbeddedServer(uvicorn.Server):
    """uvicorn in the daemon's own loop; the daemon, not uvicorn, owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def make_server(app: ASGIApp, *, host: str, port: int, max_connections: int = 1000,
                header_timeout: float = 10.0) -> EmbeddedServer:
    """The server, with connection limits (monitor/http/connections.py)."""
    limits = Limits(max_connections=fd_budget(max_connections), header_timeout=header_timeout)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off", timeout_graceful_shutdown=2,
                            http=guarded_protocol(limits))
    return EmbeddedServer(config)
