"""The outbox deliverer: claim pending notifications, send them, record the outcome.

Every statement it runs is in monitor/store/outbox.py; here is when and what to send.

Delivery guarantee (at least once, duplicates only from the crash-in-flight window):
- A notification row is written in the same transaction as the change it announces
  (monitor/store/state.py), so a recorded change always has its notifications.
- A deliverer sends only the rows its claim returned (a conditional UPDATE, see
  monitor/store/outbox.py), so two deliverers never send the same row at once. A claim
  lasts ``DeliveryPolicy.claim_ttl``, longer than any send may take.
- The network call happens outside any transaction; the outcome is then recorded.
  A row recorded ``delivered`` is never sent again.
- If the process dies after the channel accepted a message but before ``delivered`` was
  committed, the claim expires and the row is sent again: that one message may arrive
  twice. Nothing else can duplicate, and nothing is lost: an unfinished claim always
  expires back into ``pending``.
- Failures are retried with exponential backoff (``retry_initial`` doubling up to
  ``retry_max``); a row still failing ``give_up_after`` after it was created is marked
  ``failed``, counted and shown by ``status``, never silently dropped.
- If the database is unreachable at the moment a send succeeded, the outcome is held in
  memory and recorded first thing once the database is back (before the channel sends
  anything else), so a database outage does not turn a delivered message into a duplicate.
- Per line and channel, rows are sent in creation order: a line whose earlier row is
  waiting for a retry sends nothing newer until that one is through.
- Rows due together on a channel are sent as one message (monitor/core/timing.py decides
  when: group_wait, quiet hours); the claim, the send and the outcome then cover the whole
  batch, so a grouped message is delivered, retried or given up as one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.notifier import Channel
from monitor.core.model import Entry, Message
from monitor.core.render import render_entries
from monitor.core.timing import ChannelTiming, DueRow, plan_delivery
from monitor.errors import DeliveryError, StoreError
from monitor.metrics import Metrics
from monitor.store import outbox


class Renderer(Protocol):
    """Turns a channel's batch of entries into its message; ``held``: the batch waited out
    the channel's quiet hours."""

    def __call__(self, channel: str, entries: Sequence[Entry], now: datetime, *,
                 held: bool = False) -> Message: ...


def default_renderer(channel: str, entries: Sequence[Entry], now: datetime, *,
                     held: bool = False) -> Message:
    return render_entries(entries, now=now, held=held)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    timeout: timedelta
    retry_initial: timedelta
    retry_max: timedelta
    give_up_after: timedelta

    def backoff(self, attempts: int) -> timedelta:
        delay: timedelta = self.retry_initial * 2 ** max(0, attempts - 1)
        return min(delay, self.retry_max)

    @property
    def claim_ttl(self) -> timedelta:
        # Longer than any send can take, so a live claim is never stolen.
        return self.timeout * 2 + timedelta(seconds=30)


class Deliverer:
    """Sends due notifications, every channel concurrently, each channel in order."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        channels: Mapping[str, Channel],
        policy: DeliveryPolicy,
        metrics: Metrics,
        *,
        clock: Callable[[], datetime],
        timings: Mapping[str, ChannelTiming] | None = None,
        renderer: Renderer = default_renderer,
    ) -> None:
        self._sessions = sessions
        self._channels = channels
        self._policy = policy
        self._metrics = metrics
        self._clock = clock
        self._timings = timings or {}
        self._render = renderer
        self._paused_until: dict[str, datetime] = {}
        # Per channel: rows the channel accepted whose success is not yet in the database.
        self._unrecorded: dict[str, list[int]] = {}
        # Channels whose last delivery gave up, with the error: the monitor's own trouble.
        self.gave_up: dict[str, str] = {}
        self._stopping = False
        self._timeout = policy.timeout.total_seconds()

    def stop(self) -> None:
        """Claim nothing new; a send already under way is finished and recorded."""
        self._stopping = True

    @property
    def channel_names(self) -> list[str]:
        return list(self._channels)

    async def run_once(self) -> int:
        """One delivery round over every channel. Returns how many were delivered."""
        results = await asyncio.gather(
            *(self.deliver_channel(name) for name in self._channels), return_exceptions=True
        )
        delivered = 0
        for name, result in zip(self._channels, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, StoreError):
                    raise result
                log.error("delivery round failed: %s", result, extra={"channel": name})
                continue
            delivered += result
        await self.refresh_pending_gauge()
        return delivered

    async def refresh_pending_gauge(self) -> None:
        try:
            pending = await asyncio.to_thread(outbox.count_pending, self._sessions)
        except StoreError as exc:
            log.warning("pending gauge not refreshed: %s", exc)
            return
        self._metrics.notifications_pending.set(pending)

    async def deliver_channel(self, name: str) -> int:
        """Send what is due on one channel, in order. Returns how many rows were delivered.

        Raises StoreError when the database fails; a send the channel accepted is then
        recorded at the start of the next round, before anything else is sent.
        """
        try:
            return await self._deliver_channel(name)
        except StoreError as exc:
            raise StoreError(f"delivery bookkeeping failed: {exc}") from exc

    async def _deliver_channel(self, name: str) -> int:
        if (held := self._unrecorded.get(name)) is not None:
            await self._settle_success(name, held)
        now = self._clock()
        if self._paused_until.get(name, now) > now:
            return 0
        rows = await asyncio.to_thread(outbox.pending_rows, self._sessions, name)
        plan = plan_delivery(rows, self._timings.get(name, ChannelTiming()), now)
        if plan.defer or plan.drop:
            await asyncio.to_thread(outbox.hold, self._sessions, defer=plan.defer,
                                    until=plan.defer_until, drop=plan.drop, now=self._clock())
        delivered = 0
        for batch in plan.batches:
            if self._stopping:
                break
            claimed = await asyncio.to_thread(outbox.claim, self._sessions, [r.id for r in batch],
                                              now=self._clock(), ttl=self._policy.claim_ttl)
            batch = [r for r in batch if r.id in claimed]
            if not batch:
                continue  # another deliverer has them, or they were settled meanwhile
            ids = [r.id for r in batch]
            try:
                message = self._message(name, batch, now)
                await self._channels[name].send(message, timeout=self._timeout)
            except DeliveryError as exc:
                await self._record_failure(ids, str(exc), name)
                # The channel is likely down: try it again after the backoff, not row by row.
                return delivered
            self._unrecorded[name] = ids
            await self._settle_success(name, ids)
            delivered += len(ids)
        self._paused_until.pop(name, None)
        return delivered

    async def _settle_success(self, channel: str, row_ids: list[int]) -> None:
        await asyncio.to_thread(outbox.record_success, self._sessions, row_ids,
                                now=self._clock())
        self._unrecorded.pop(channel, None)
        self.gave_up.pop(channel, None)
        self._metrics.notifications.labels(channel=channel, outcome="delivered").inc(
            len(row_ids))

    def _message(self, channel: str, batch: Sequence[DueRow], now: datetime) -> Message:
        if len(batch) == 1 and batch[0].message is not None:
            return batch[0].message
        entries = [r.entry for r in batch if r.entry is not None]
        return self._render(channel, entries, now, held=any(r.deferred for r in batch))

    async def _record_failure(self, row_ids: list[int], error: str, channel: str) -> None:
        now = self._clock()
        failure = await asyncio.to_thread(
            outbox.record_failure, self._sessions, row_ids, error=error, now=now,
            backoff=self._policy.backoff, give_up_after=self._policy.give_up_after)
        outcome = "gave_up" if failure.gave_up else "failed"
        if failure.gave_up:
            self.gave_up[channel] = error[:300]
        self._metrics.notifications.labels(channel=channel, outcome=outcome).inc(len(row_ids))
        self._paused_until[channel] = now + self._policy.backoff(failure.attempts)
        log.warning(
            "delivery %s channel=%s notifications=%s attempts=%d error=%s",
            "abandoned" if failure.gave_up else "failed, will retry", channel,
            ",".join(map(str, row_ids)), failure.attempts, error,
        )
