"""The chat sweep of one account: every chat, page by page, under a request budget.

``GET /v3/chats?limit=100&cursor=...`` without ``from`` lists the chats of every line of
the account; the sweep follows ``next_cursor`` to the end, then rests until ``interval``
after the sweep's start has passed, and starts over from the top.

- **Budget.** `tick` makes at most one request, and only when the `RequestBudget` (at
  most ``requests_per_minute`` in any minute) allows; the daemon calls it once per
  ``60 / requests_per_minute`` seconds. A failed request is not retried within a tick:
  retries would spend budget the reputation poll may need.
- **Retry-After.** A 429 pauses the sweep for as long as the server asks (a minute if it
  does not say); the same page is asked for again afterwards.
- **Resumable.** The cursor, the sweep's start and its cost so far are stored
  (store/chats.py, ``chat_sweeps``) with every page that changed chats, every
  `CHECKPOINT_PAGES` pages otherwise, and at the end of a sweep: a restart loses at most
  that many pages of progress. A stored cursor the API no longer accepts (a 4xx other
  than 401/403/429) restarts the sweep from the top.
- **Restored at start.** The first tick (after a start or a lease moving here) summarises
  every line with stored chats not HEALTHY, so the WATCH assessments are rebuilt from the
  store before any page is fetched.
- **Cheap when nothing changed.** An unchanged page is one read of the stored rows and no
  write (but the periodic checkpoint); no summary is computed, nothing reaches the poller.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.orm import Session, sessionmaker

from monitor.api.client import LinqClient
from monitor.core.budget import RequestBudget
from monitor.errors import ApiAuthError, ApiError, ApiRateLimited, LeaseLost, StoreError
from monitor.metrics import Metrics
from monitor.service.chat_health import ChatHealth
from monitor.store.chats import SweepProgress, load_progress, troubled_lines

log = logging.getLogger(__name__)

CHECKPOINT_PAGES = 10
DEFAULT_PAUSE = timedelta(minutes=1)  # after a 429 that does not say how long


class Tick(StrEnum):
    """What one tick did."""

    RESTING = "resting"  # between sweeps
    PAUSED = "paused"  # waiting out a Retry-After
    BUDGET = "budget"  # the minute's requests are spent
    PAGE = "page"  # fetched and applied a page
    DONE = "done"  # fetched the last page: a full sweep completed
    FAILED = "failed"  # the request or the store failed; the same page comes next


@dataclass(frozen=True, slots=True)
class SweepSettings:
    requests_per_minute: int
    interval: timedelta


class ChatSweeper:
    """Sweeps one account's chats; call `tick` on a schedule (one request at most)."""

    def __init__(self, account: str, client: LinqClient, sessions: sessionmaker[Session],
                 health: ChatHealth, metrics: Metrics, *, settings: SweepSettings) -> None:
        self.account = account
        self._client = client
        self._sessions = sessions
        self._health = health
        self._metrics = metrics
        self._settings = settings
        self._budget = RequestBudget(settings.requests_per_minute)
        self._progress: SweepProgress | None = None  # None: read it from the store first
        self._paused_until: datetime | None = None

    @property
    def interval(self) -> timedelta:
        """How often to call `tick`: the budget's even spacing."""
        return self._budget.interval

    @property
    def progress(self) -> SweepProgress | None:
        return self._progress

    def forget(self) -> None:
        """The lease moved: read the progress from the store again before the next page."""
        self._progress = None
        self._paused_until = None
        self._health.forget(self.account)

    async def tick(self, now: datetime) -> Tick:
        """Fetch and apply at most one page. Raises LeaseLost when the poller could not
        record what the chats changed because the account's lease is gone; other failures
        are logged, counted and retried on a later tick."""
        try:
            return await self._tick(now)
        except LeaseLost:
            self._progress = None
            raise
        except StoreError as exc:
            log.error("chat sweep: cannot store: %s", exc, extra={"account": self.account})
            self._progress = None  # re-read: what was stored is the truth
            return Tick.FAILED

    async def _tick(self, now: datetime) -> Tick:
        if self._paused_until is not None and now < self._paused_until:
            return Tick.PAUSED
        if self._progress is None:
            progress = await asyncio.to_thread(load_progress, self._sessions, self.account)
            self._publish(progress)
            await self._restore()
            self._progress = progress
        progress = self._progress
        if progress.started_at is None:
            if not self._due(progress, now):
                return Tick.RESTING
            progress = replace(progress, started_at=now, pages=0, requests=0, cursor=None)
        if not self._budget.allows(now):
            self._progress = progress
            return Tick.BUDGET
        self._budget.spend(now)
        progress = replace(progress, requests=progress.requests + 1)
        self._progress = progress
        try:
            page = await self._client.list_chats(cursor=progress.cursor)
        except ApiRateLimited as exc:
            wait = timedelta(seconds=exc.retry_after) if exc.retry_after else DEFAULT_PAUSE
            self._paused_until = now + wait
            self._count("rate_limited")
            log.warning("chat sweep: rate limited; pausing %.0fs", wait.total_seconds(),
                        extra={"account": self.account, "trace_id": exc.trace_id})
            return Tick.FAILED
        except ApiError as exc:
            self._count("error")
            if (exc.permanent and not isinstance(exc, ApiAuthError)
                    and progress.cursor is not None):
                log.warning("chat sweep: the API refused the stored cursor (%s); starting "
                            "over from the first page", exc, extra={"account": self.account})
                self._progress = replace(progress, cursor=None)
            else:
                log.warning("chat sweep: %s", exc,
                            extra={"account": self.account, "trace_id": exc.trace_id})
            return Tick.FAILED
        self._count("ok")
        self._metrics.chat_sweep_pages.labels(self.account).inc()
        if page.skipped:
            self._metrics.skipped_items.labels(self.account).inc(page.skipped)
        pages = progress.pages + 1
        done = page.next_cursor is None
        if done:
            assert progress.started_at is not None
            progress = SweepProgress(
                completed_at=now, last_duration=(now - progress.started_at).total_seconds(),
                last_pages=pages, last_requests=progress.requests)
        else:
            progress = replace(progress, cursor=page.next_cursor, pages=pages)
        await self._health.record(self.account, page.records, progress=progress,
                                  checkpoint=done or pages % CHECKPOINT_PAGES == 0)
        self._progress = progress
        self._publish(progress)
        if not done:
            return Tick.PAGE
        log.info("chat sweep complete: %d pages, %d requests, %.0fs", progress.last_pages or 0,
                 progress.last_requests or 0, progress.last_duration or 0.0,
                 extra={"account": self.account})
        # A chat leaving the window changes its line's summary without any row changing:
        # every line with chats not HEALTHY is summarised again once per sweep.
        lines = await asyncio.to_thread(troubled_lines, self._sessions, self.account)
        lines |= self._health.told_lines(self.account)
        await self._health.resummarise(self.account, lines)
        await self._health.count_account(self.account)
        return Tick.DONE

    async def _restore(self) -> None:
        """Started, or the lease came here: summarise every line with stored chats not
        HEALTHY now, from the store, rather than at the end of the next full sweep. A line
        the database holds as WATCH gets its reasons and worst chats back (its reminders
        would otherwise lack them for a whole sweep), or clears if its chats have."""
        lines = await asyncio.to_thread(troubled_lines, self._sessions, self.account)
        await self._health.resummarise(self.account, lines)

    def _due(self, progress: SweepProgress, now: datetime) -> bool:
        if progress.completed_at is None:
            return True
        started = progress.completed_at - timedelta(seconds=progress.last_duration or 0.0)
        return now >= started + self._settings.interval

    def _count(self, outcome: str) -> None:
        self._metrics.chat_sweep_requests.labels(self.account, outcome).inc()

    def _publish(self, progress: SweepProgress) -> None:
        m = self._metrics
        m.chat_sweep_progress.labels(self.account).set(progress.pages)
        if progress.last_duration is not None:
            m.chat_sweep_duration.labels(self.account).set(progress.last_duration)
        if progress.completed_at is not None:
            m.chat_sweep_completed.labels(self.account).set(progress.completed_at.timestamp())
