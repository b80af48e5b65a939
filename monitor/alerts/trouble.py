"""The monitor's own trouble, announced like a CRITICAL line: once when it starts, once when
it clears. Two kinds: an account whose polls have failed for ``stale_after`` (its lines are
unwatched), and a channel whose deliveries gave up (``give_up_after``).

Announcements go to every channel that would hear of a CRITICAL line of the account (all
channels for a channel's trouble, the failing one included: it hears once it works again).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from monitor.config import Config
from monitor.core.model import Message
from monitor.core.render import format_duration, render_trouble
from monitor.runtime import Runtime
from monitor.store.troubles import active_troubles, flip_trouble

log = logging.getLogger(__name__)


async def check_troubles(runtime: Runtime, *, started_at: datetime, now: datetime) -> int:
    """Open and clear troubles to match the present; returns how many flips were queued."""
    config = runtime.config
    wanted: dict[str, tuple[str, str | None, list[str]]] = {}  # key → problem, detail, channels
    for account, poller in runtime.pollers.items():
        last_good = poller.last_success_at or started_at
        if now - last_good >= config.alerts.stale_after:
            wanted[f"stale:{account}"] = (
                f"polls of account {account} failing for over "
                f"{format_duration(now - last_good)}", poller.last_error,
                _channels_for(config, account))
    for channel, error in runtime.deliverer.gave_up.items():
        wanted[f"delivery:{channel}"] = (f"alerts to channel {channel} are not getting through",
                                         error, [c.name for c in config.alerts.channels])
    active = await asyncio.to_thread(active_troubles, runtime.sessions)
    flips = 0
    for key, (problem, detail, channels) in wanted.items():
        if key in active:
            continue
        message = render_trouble(problem, since=now, now=now, cleared=False, detail=detail)
        if await _flip(runtime, key, True, detail, now, channels, message):
            log.error("monitor trouble: %s", problem)
            flips += 1
    for key, since in active.items():
        if key in wanted or not _still_known(runtime, key):
            continue
        problem = _describe(key)
        message = render_trouble(problem, since=since, now=now, cleared=True)
        channels = _channels_for(config, key.partition(":")[2] if key.startswith("stale:")
                                 else None)
        if await _flip(runtime, key, False, None, now, channels, message):
            log.info("monitor trouble cleared: %s", problem)
            flips += 1
    return flips


async def _flip(runtime: Runtime, key: str, active: bool, detail: str | None, now: datetime,
                channels: list[str], message: Message) -> bool:
    return await asyncio.to_thread(
        flip_trouble, runtime.sessions, key, active=active, detail=detail, now=now,
        announcements=[(c, message) for c in channels])


def _channels_for(config: Config, account: str | None) -> list[str]:
    return [c.name for c in config.alerts.channels
            if account is None or not c.accounts or account in c.accounts]


def _still_known(runtime: Runtime, key: str) -> bool:
    """A trouble about an account no longer configured is left alone, not 'cleared'."""
    kind, _, name = key.partition(":")
    if kind == "stale":
        return name in runtime.pollers
    return name in runtime.channels


def _describe(key: str) -> str:
    kind, _, name = key.partition(":")
    if kind == "stale":
        return f"polls of account {name} failing"
    return f"alerts to channel {name} not getting through"
