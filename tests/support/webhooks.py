"""What the in-process webhook tests share: one signing secret, a config with webhooks on,
the daemon's own HTTP app behind httpx's ASGI transport, and a delivery made as Linq makes
it (signed), waited on until the runtime has applied it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx

from monitor.config import Config, parse_config
from monitor.http.server import build_app
from monitor.service.runtime import Runtime
from monitor.simulator.webhooks import Delivery, WebhookSender, new_secret

SECRET = new_secret()
SECRET_ENV = "TEST_WEBHOOK_SECRET"
sender = WebhookSender(SECRET)


def webhook_config(database_url: str, sim_url: str, *,
                   channels: Sequence[dict[str, Any]] = (), **account: Any) -> Config:
    """One account ``main`` on the simulator with webhooks on (``SECRET``); ``account``
    adds or overrides the account's keys, ``channels`` are ``[[alerts.channels]]``."""
    return parse_config({
        "accounts": [{"name": "main", "base_url": sim_url, "token": "sim-token",
                      "max_retries": 0, "webhook_secret_env": SECRET_ENV, **account}],
        "database": {"url": database_url},
        "alerts": {"channels": list(channels)},
    }, environ={SECRET_ENV: SECRET})


def channel(name: str, url: str, **keys: Any) -> dict[str, Any]:
    """A channel that sends at once (``group_wait = "0s"``)."""
    return {"name": name, "url": url, "group_wait": "0s", **keys}


@asynccontextmanager
async def app_client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The daemon's HTTP app for ``runtime``, called in-process."""
    app = build_app(runtime, started_at=datetime.now(UTC))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://monitor") as client:
        yield client


async def deliver(client: httpx.AsyncClient, runtime: Runtime, delivery: Delivery, *,
                  headers: dict[str, str] | None = None) -> httpx.Response:
    """POST ``delivery`` as Linq does (signed unless ``headers`` say otherwise), then wait
    until the runtime has applied it."""
    response = await client.post("/webhooks/linq", content=delivery.body,
                                 headers=sender.headers(delivery) if headers is None else headers)
    await runtime.webhooks.drain()
    return response
