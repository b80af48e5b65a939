"""The outbox deliverer: claim pending notifications, send them, record the outcome.

Delivery guarantee (at least once, duplicates only from the crash-in-flight window):
- A notification row is written in the same transaction as the change it announces
  (monitor/store/state.py), so a recorded change always has its notifications.
- A deliverer claims a row with a conditional UPDATE (``state = 'pending'`` and no live
  claim) and checks the row count, so two deliverers never send the same row at once.
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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.notifier import Channel
from monitor.core.model import Message
from monitor.errors import DeliveryError, StoreError
from monitor.metrics import Metrics
from monitor.store.schema import Notification

log = logging.getLogger(__name__)

BATCH = 200


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
    ) -> None:
        self._sessions = sessions
        self._channels = channels
        self._policy = policy
        self._metrics = metrics
        self._clock = clock
        self._paused_until: dict[str, datetime] = {}
        # Per channel: a row the channel accepted whose success is not yet in the database.
        self._unrecorded: dict[str, int] = {}
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
                if not isinstance(result, StoreError | SQLAlchemyError):
                    raise result
                log.error("delivery round failed: %s", result, extra={"channel": name})
                continue
            delivered += result
        await self.refresh_pending_gauge()
        return delivered

    async def refresh_pending_gauge(self) -> None:
        try:
            pending = await asyncio.to_thread(self._count_pending)
        except SQLAlchemyError as exc:
            log.warning("cannot count pending notifications: %s", exc)
            return
        self._metrics.notifications_pending.set(pending)

    async def deliver_channel(self, name: str) -> int:
        """Send what is due on one channel, in order. Returns how many were delivered.

        Raises StoreError when the database fails; a send the channel accepted is then
        recorded at the start of the next round, before anything else is sent.
        """
        try:
            return await self._deliver_channel(name)
        except SQLAlchemyError as exc:
            raise StoreError(f"delivery bookkeeping failed: {_first_line(exc)}") from exc

    async def _deliver_channel(self, name: str) -> int:
        if (held := self._unrecorded.get(name)) is not None:
            await self._settle_success(name, held)
        now = self._clock()
        if self._paused_until.get(name, now) > now:
            return 0
        rows = await asyncio.to_thread(self._due_rows, name, now)
        delivered = 0
        for row_id, message in rows:
            if self._stopping:
                break
            if not await asyncio.to_thread(self._claim, row_id):
                continue  # another deliverer has it, or it was settled meanwhile
            try:
                await self._channels[name].send(message, timeout=self._timeout)
            except DeliveryError as exc:
                await asyncio.to_thread(self._record_failure, row_id, str(exc), name)
                # The channel is likely down: try it again after the backoff, not row by row.
                return delivered
            self._unrecorded[name] = row_id
            await self._settle_success(name, row_id)
            delivered += 1
        self._paused_until.pop(name, None)
        return delivered

    async def _settle_success(self, channel: str, row_id: int) -> None:
        await asyncio.to_thread(self._record_success, row_id)
        del self._unrecorded[channel]
        self._metrics.notifications.labels(channel=channel, outcome="delivered").inc()

    def _due_rows(self, channel: str, now: datetime) -> list[tuple[int, Message]]:
        """Pending rows of a channel that may be sent now, oldest first, per-line order kept."""
        with self._sessions() as session:
            rows = session.execute(
                select(Notification.id, Notification.line_id, Notification.title,
                       Notification.body, Notification.next_attempt_at,
                       Notification.claimed_until)
                .where(Notification.state == "pending", Notification.channel == channel)
                .order_by(Notification.id)
                .limit(BATCH)
            ).all()
        due: list[tuple[int, Message]] = []
        blocked: set[str] = set()
        for row_id, line_id, title, body, next_at, claimed in rows:
            waiting = next_at > now or (claimed is not None and claimed > now)
            if waiting or line_id in blocked:
                blocked.add(line_id)
                continue
            due.append((row_id, Message(title=title, body=body)))
        return due

    def _claim(self, row_id: int) -> bool:
        now = self._clock()
        with self._sessions.begin() as session:
            result = session.execute(
                update(Notification)
                .where(
                    Notification.id == row_id,
                    Notification.state == "pending",
                    or_(Notification.claimed_until.is_(None), Notification.claimed_until <= now),
                )
                .values(claimed_until=now + self._policy.claim_ttl,
                        attempts=Notification.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            claimed: bool = result.rowcount == 1  # type: ignore[attr-defined]
            return claimed

    def _record_success(self, row_id: int) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(Notification)
                .where(Notification.id == row_id)
                .values(state="delivered", delivered_at=self._clock(), claimed_until=None,
                        last_error=None)
                .execution_options(synchronize_session=False)
            )

    def _record_failure(self, row_id: int, error: str, channel: str) -> None:
        now = self._clock()
        with self._sessions.begin() as session:
            row = session.get_one(Notification, row_id)
            gave_up = now - row.created_at >= self._policy.give_up_after
            retry_at = now + self._policy.backoff(row.attempts)
            row.last_error = error[:2000]
            row.claimed_until = None
            row.next_attempt_at = retry_at
            if gave_up:
                row.state = "failed"
        outcome = "gave_up" if gave_up else "failed"
        self._metrics.notifications.labels(channel=channel, outcome=outcome).inc()
        self._paused_until[channel] = retry_at
        log.warning(
            "delivery %s channel=%s notification=%d attempts=%d error=%s",
            "abandoned" if gave_up else "failed, will retry", channel, row_id, row.attempts, error,
        )

    def _count_pending(self) -> int:
        with self._sessions() as session:
            return session.scalar(
                select(func.count()).select_from(Notification)
                .where(Notification.state == "pending")
            ) or 0


def _first_line(exc: BaseException) -> str:
    """SQLAlchemy appends the statement and its parameters; the first line says what failed."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
