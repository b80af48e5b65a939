"""The monitor's own trouble, announced like a CRITICAL line: once when it starts, once when
it clears. Two kinds: an account whose polls have failed for ``stale_after`` (its lines are
unwatched), and a channel whose deliveries gave up (``give_up_after``).

Announcements go to every channel that would hear of a CRITICAL line of the account (all
channels for a channel's trouble, the failing one included: it hears once it works again),
each rendered through that channel's templates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from monitor.config import Config
from monitor.core.trouble import Trouble, TroubleKind
from monitor.service.runtime import Runtime
from monitor.store.troubles import active_troubles, flip_trouble

log = logging.getLogger(__name__)

_KEY_PREFIX = {TroubleKind.POLLS_FAILING: "stale", TroubleKind.DELIVERY_FAILING: "delivery"}


async def check_troubles(
    runtime: Runtime, *, started_at: datetime, now: datetime,
    holds: Callable[[str], datetime | None] | None = None,
) -> int:
    """Open and clear troubles to match the present; returns how many flips were queued.

    With replicas, ``holds`` gives when this replica took an account's lease (None: not
    ours): only the holder judges an account's polls, from when it took over.
    """
    config = runtime.config
    wanted: dict[str, Trouble] = {}
    held: dict[str, datetime] = {}
    for account in runtime.pollers:
        since = started_at if holds is None else holds(account)
        if since is not None:
            held[account] = since
    for account, poller in runtime.pollers.items():
        if account not in held:
            continue
        last_good = poller.last_success_at or max(started_at, held[account])
        if now - last_good >= config.alerts.stale_after:
            wanted[_key(TroubleKind.POLLS_FAILING, account)] = Trouble(
                TroubleKind.POLLS_FAILING, account, since=last_good,
                last_success=poller.last_success_at, last_error=poller.last_error)
    for channel, error in runtime.deliverer.gave_up.items():
        wanted[_key(TroubleKind.DELIVERY_FAILING, channel)] = Trouble(
            TroubleKind.DELIVERY_FAILING, channel, since=now, last_error=error)
    active = await asyncio.to_thread(active_troubles, runtime.sessions)
    flips = 0
    for key, trouble in wanted.items():
        if key not in active and await _announce(runtime, key, trouble, now, active=True):
            log.error("monitor trouble: %s %s", trouble.kind, trouble.subject)
            flips += 1
    for key, since in active.items():
        known = _from_key(key, since)
        if key in wanted or known is None or not _still_configured(runtime, known):
            continue
        if known.kind is TroubleKind.POLLS_FAILING and known.subject not in held:
            continue  # its holder decides when it clears
        cleared = Trouble(known.kind, known.subject, since=since, cleared_at=now)
        if await _announce(runtime, key, cleared, now, active=False):
            log.info("monitor trouble cleared: %s %s", known.kind, known.subject)
            flips += 1
    return flips


async def _announce(runtime: Runtime, key: str, trouble: Trouble, now: datetime, *,
                    active: bool) -> bool:
    channels = _channels_for(runtime.config, trouble)
    announcements = [(c, runtime.renderers[c].render_trouble(trouble, now=now))
                     for c in channels]
    return await asyncio.to_thread(
        flip_trouble, runtime.sessions, key, active=active, detail=trouble.last_error,
        since=trouble.since, now=now, announcements=announcements)


def _key(kind: TroubleKind, subject: str) -> str:
    return f"{_KEY_PREFIX[kind]}:{subject}"


def _from_key(key: str, since: datetime) -> Trouble | None:
    prefix, _, subject = key.partition(":")
    for kind, known in _KEY_PREFIX.items():
        if prefix == known:
            return Trouble(kind, subject, since=since)
    return None


def _channels_for(config: Config, trouble: Trouble) -> list[str]:
    if trouble.kind is TroubleKind.DELIVERY_FAILING:
        return [c.name for c in config.alerts.channels]
    return [c.name for c in config.alerts.channels
            if not c.accounts or trouble.subject in c.accounts]


def _still_configured(runtime: Runtime, trouble: Trouble) -> bool:
    """A trouble about an account or channel no longer configured is left, not 'cleared'."""
    if trouble.kind is TroubleKind.POLLS_FAILING:
        return trouble.subject in runtime.pollers
    return trouble.subject in runtime.channels
