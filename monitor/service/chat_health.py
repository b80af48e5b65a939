"""Chat health, from both sources into one state: store what changed, summarise the lines
it touched, tell the account's poller about the summaries that changed.

The sweep (service/chats.py) and the webhook path (webhooks/chats.py) both hand their
chats to `ChatHealth.record`. Only lines whose summary differs from the last one handed
over reach ``apply_chat_health``: a page of unchanged chats costs one read and nothing
else. The memory of the last summaries is per process: after a restart (or a lease moving
here) each line's first summary is handed over again, which the poller takes as a no-op
when nothing changed for it.

Only the holder of an account's lease hands summaries to its poller (the writes they
lead to are fenced by that lease); a replica that received a webhook for an account it
does not hold still stores the chat, and the holder's next full sweep re-summarises every
line with unhealthy chats.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from monitor.core.chat_record import ChatRecord, fingerprint
from monitor.core.chats import ChatHealthSummary
from monitor.core.model import LineState
from monitor.metrics import Metrics
from monitor.store.chats import SweepProgress, account_counts, apply_chats, summarise
from monitor.webhooks.process import Leases

log = logging.getLogger(__name__)


class ChatHealthTarget(Protocol):
    """What chat health needs of an account's poller (service/poller.py)."""

    def find(self, phone_or_id: str) -> LineState | None: ...

    async def apply_chat_health(self, summaries: Sequence[ChatHealthSummary],
                                now: datetime) -> None: ...


class ChatHealth:
    """Every account's chat health: the store, the summaries handed over, the metrics."""

    def __init__(self, sessions: sessionmaker[Session], targets: Mapping[str, ChatHealthTarget],
                 metrics: Metrics, *, window: timedelta, clock: Callable[[], datetime],
                 leases: Leases) -> None:
        self._sessions = sessions
        self._targets = targets
        self._metrics = metrics
        self._window = window
        self._clock = clock
        self._leases = leases
        # Per account: each line's last summary handed over (its fingerprint), and the
        # lines whose last summary had chats not HEALTHY.
        self._told: dict[str, dict[str, int]] = {}
        self._troubled: dict[str, set[str]] = {}

    async def record(self, account: str, records: Sequence[ChatRecord], *,
                     progress: SweepProgress | None = None,
                     checkpoint: bool = True) -> list[ChatHealthSummary]:
        """Store `records` (and `progress` in the same transaction, see `apply_chats`);
        hand the summaries of lines that changed to the poller. Returns those summaries.
        Raises StoreError."""
        changed = await asyncio.to_thread(apply_chats, self._sessions, account, records,
                                          progress=progress, checkpoint=checkpoint)
        if not changed:
            return []
        return await self.resummarise(account, changed)

    async def resummarise(self, account: str, phones: Iterable[str]) -> list[ChatHealthSummary]:
        """Summarise `phones` now; hand over (and return) those that changed."""
        now = self._clock()
        wanted = set(phones)
        if not wanted:
            return []
        summaries = await asyncio.to_thread(summarise, self._sessions, account, wanted,
                                            since=now - self._window, now=now)
        told = self._told.setdefault(account, {})
        fresh = [s for s in summaries if told.get(s.phone_number) != fingerprint(s)]
        if not fresh:
            return []
        target = self._targets.get(account)
        if target is None or not self._leases.holds(account):
            return []  # the holder's own sweep summarises these lines
        await target.apply_chat_health(fresh, now)
        troubled = self._troubled.setdefault(account, set())
        for summary in fresh:
            line = target.find(summary.phone_number)
            if line is None:
                # A number the poller does not know yet (chats seen before the poll that
                # finds the line): not told, so the summary is handed over again once it
                # does (the end of a sweep re-summarises every line with chats not HEALTHY).
                continue
            told[summary.phone_number] = fingerprint(summary)
            if summary.worst:
                troubled.add(summary.phone_number)
            else:
                troubled.discard(summary.phone_number)
            self._metrics.set_unhealthy_chats(account, line.line_id, summary.phone_number,
                                              summary.unhealthy)
        return fresh

    def told_lines(self, account: str) -> set[str]:
        """Lines whose last summary handed over had chats not HEALTHY."""
        return set(self._troubled.get(account, ()))

    async def count_account(self, account: str) -> dict[str, int]:
        """The account's chats active in the window, by status, into the metrics."""
        now = self._clock()
        counts = await asyncio.to_thread(account_counts, self._sessions, account,
                                         since=now - self._window)
        self._metrics.set_account_chats(account, counts)
        return counts

    def forget(self, account: str) -> None:
        """Another replica took the account, or it came back here: start afresh."""
        self._told.pop(account, None)
        self._troubled.pop(account, None)
