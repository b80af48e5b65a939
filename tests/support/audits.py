"""What the in-process audit tests share: runtimes opened on demand (a restart is a second
one on the same database) and closed at the end with their audits cancelled, and delivery
rounds run until the receiver has what the test waits for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from monitor.config import parse_config
from monitor.service.runtime import Runtime, open_database
from tests.support.receiver import Received, Receiver

Opener = Callable[..., Awaitable[Runtime]]


@asynccontextmanager
async def audit_runtimes(document: Callable[..., dict[str, Any]]) -> AsyncIterator[Opener]:
    """``open(**options)`` opens a Runtime on ``parse_config(document(**options))``."""
    opened: list[Runtime] = []

    async def open_runtime(**options: Any) -> Runtime:
        config = parse_config(document(**options))
        engine, sessions = open_database(config)
        rt = await Runtime(config, engine, sessions).__aenter__()
        opened.append(rt)
        return rt

    try:
        yield open_runtime
    finally:
        for rt in opened:
            await rt.audits.cancel()
            await rt.__aexit__(None, None, None)


async def deliver_until(rt: Runtime, receiver: Receiver, count: int, path: str
                        ) -> list[Received]:
    """Delivery rounds until ``count`` messages reached channel ``path``. A row held for an
    audit is not due before ``audit_wait``: waiting past it times the test out."""
    async with asyncio.timeout(30):
        while len(sent := receiver.messages_to(path)) < count:
            await rt.deliverer.run_once()
            await asyncio.sleep(0.02)
    return sent
