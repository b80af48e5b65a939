"""The monitor's own trouble, announced like a CRITICAL line: once when it starts, once when
it clears. Three kinds: an account whose polls have failed for ``stale_after`` (its lines
are unwatched), a channel whose deliveries gave up (``give_up_after``), and webhooks that
will not arrive or are refused (push liveness: FLAGGED is only known from them).

Announcements go to every channel that would hear of a CRITICAL line of the account (all
channels for a channel's trouble, the failing one included: it hears once it works again),
each rendered through that channel's templates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from monitor.config import AlertsConfig, ChannelConfig
from monitor.core.model import Message
from monitor.core.trouble import Trouble, TroubleKind
from monitor.http.server import PollHealth
from monitor.store.troubles import active_troubles, flip_trouble
from monitor.webhooks.liveness import SIGNATURES

log = logging.getLogger(__name__)

_KEY_PREFIX = {TroubleKind.POLLS_FAILING: "stale", TroubleKind.DELIVERY_FAILING: "delivery",
               TroubleKind.PUSH_FAILING: "push"}


class TroubleRenderer(Protocol):
    """A channel's text for a trouble (its templates over the default)."""

    def render_trouble(self, trouble: Trouble, *, now: datetime) -> Message: ...


async def check_troubles(
    sessions: sessionmaker[Session], alerts: AlertsConfig, *,
    pollers: Mapping[str, PollHealth], gave_up: Mapping[str, str],
    renderers: Mapping[str, TroubleRenderer], channels: Collection[str],
    started_at: datetime, now: datetime,
    holds: Callable[[str], datetime | None] | None = None,
    push: Mapping[str, str | None] | None = None,
) -> int:
    """Open and clear troubles to match the present; returns how many flips were queued.

    ``pollers``: every configured account's poller; ``gave_up``: channel → error, for the
    channels whose last delivery gave up; ``channels``: the configured channel names.
    With replicas, ``holds`` gives when this replica took an account's lease (None: not
    ours): only the holder judges an account's polls, from when it took over. ``push``:
    subject -> problem, or None for judged fine here (monitor.webhooks.liveness); a push
    trouble clears only where it was judged fine, never where it was not judged at all.
    """
    held = _judged_here(pollers, started_at=started_at, holds=holds)
    wanted = {**_stale_accounts(pollers, held, stale_after=alerts.stale_after,
                               started_at=started_at, now=now),
              **_failing_channels(gave_up, now=now),
              **{_key(TroubleKind.PUSH_FAILING, subject): Trouble(
                  TroubleKind.PUSH_FAILING, subject, since=now, last_error=problem)
                 for subject, problem in (push or {}).items() if problem}}
    announcer = _Announcer(sessions, alerts.channels, renderers)
    active = await asyncio.to_thread(active_troubles, sessions)
    flips = 0
    for key, trouble in wanted.items():
        if key not in active and await announcer.flip(key, trouble, now=now, active=True):
            log.error("monitor trouble: %s %s", trouble.kind, trouble.subject)
            flips += 1
    for key, since in active.items():
        known = _from_key(key, since)
        if key in wanted or known is None or not _still_configured(known, pollers, channels):
            continue
        if known.kind is TroubleKind.POLLS_FAILING and known.subject not in held:
            continue  # its holder decides when it clears
        if known.kind is TroubleKind.PUSH_FAILING and known.subject not in (push or {}):
            continue  # not judged here (another replica's account, no webhook seen yet)
        cleared = Trouble(known.kind, known.subject, since=since, cleared_at=now)
        if await announcer.flip(key, cleared, now=now, active=False):
            log.info("monitor trouble cleared: %s %s", known.kind, known.subject)
            flips += 1
    return flips


def _judged_here(accounts: Iterable[str], *, started_at: datetime,
                 holds: Callable[[str], datetime | None] | None) -> dict[str, datetime]:
    """The accounts whose polls this replica judges, with since when."""
    held: dict[str, datetime] = {}
    for account in accounts:
        since = started_at if holds is None else holds(account)
        if since is not None:
            held[account] = since
    return held


def _stale_accounts(pollers: Mapping[str, PollHealth], held: Mapping[str, datetime], *,
                    stale_after: timedelta, started_at: datetime, now: datetime
                    ) -> dict[str, Trouble]:
    """Accounts judged here whose polls have failed for ``stale_after``, by key."""
    stale: dict[str, Trouble] = {}
    for account, poller in pollers.items():
        if account not in held:
            continue
        last_good = poller.last_success_at or max(started_at, held[account])
        if now - last_good >= stale_after:
            stale[_key(TroubleKind.POLLS_FAILING, account)] = Trouble(
                TroubleKind.POLLS_FAILING, account, since=last_good,
                last_success=poller.last_success_at, last_error=poller.last_error)
    return stale


def _failing_channels(gave_up: Mapping[str, str], *, now: datetime) -> dict[str, Trouble]:
    return {_key(TroubleKind.DELIVERY_FAILING, channel): Trouble(
                TroubleKind.DELIVERY_FAILING, channel, since=now, last_error=error)
            for channel, error in gave_up.items()}


@dataclass(frozen=True, slots=True)
class _Announcer:
    """Flips a trouble and queues its announcement to each channel that hears of it."""

    sessions: sessionmaker[Session]
    channels: Sequence[ChannelConfig]
    renderers: Mapping[str, TroubleRenderer]

    async def flip(self, key: str, trouble: Trouble, *, now: datetime, active: bool) -> bool:
        announcements = [(c, self.renderers[c].render_trouble(trouble, now=now))
                         for c in _channels_for(self.channels, trouble)]
        return await asyncio.to_thread(
            flip_trouble, self.sessions, key, active=active, detail=trouble.last_error,
            since=trouble.since, now=now, announcements=announcements)


def _key(kind: TroubleKind, subject: str) -> str:
    return f"{_KEY_PREFIX[kind]}:{subject}"


def _from_key(key: str, since: datetime) -> Trouble | None:
    prefix, _, subject = key.partition(":")
    for kind, known in _KEY_PREFIX.items():
        if prefix == known:
            return Trouble(kind, subject, since=since)
    return None


def _channels_for(channels: Sequence[ChannelConfig], trouble: Trouble) -> list[str]:
    if trouble.kind is TroubleKind.DELIVERY_FAILING or (
            trouble.kind is TroubleKind.PUSH_FAILING and trouble.subject == SIGNATURES):
        return [c.name for c in channels]
    return [c.name for c in channels if not c.accounts or trouble.subject in c.accounts]


def _still_configured(trouble: Trouble, pollers: Collection[str],
                      channels: Collection[str]) -> bool:
    """A trouble about an account or channel no longer configured is left, not 'cleared'."""
    if trouble.kind is TroubleKind.POLLS_FAILING:
        return trouble.subject in pollers
    if trouble.kind is TroubleKind.PUSH_FAILING:
        return trouble.subject in pollers or trouble.subject == SIGNATURES
    return trouble.subject in channels
