"""One poll cycle of one account: fetch → detect → route → render → commit → expose.

The only I/O is at the two ends (the API call and one database transaction); the middle
is the pure core. If the commit fails, the in-memory state is left as it was, so the next
poll detects the same changes again: nothing is lost and nothing half-written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from monitor.api.client import LinqClient, ListResult
from monitor.api.payload import PhoneNumberList
from monitor.core import status as st
from monitor.core.detect import AccountDiff, detect_account
from monitor.core.model import LineState, Transition, TransitionKind
from monitor.core.render import describe, render_notice
from monitor.core.route import ChannelRule, route
from monitor.errors import ApiAuthError, ApiError, ApiRateLimited, StoreError
from monitor.gcpause import gc_paused
from monitor.logs import log_context
from monitor.metrics import Metrics
from monitor.store.state import (
    Outgoing,
    PollRecord,
    commit_poll,
    load_lines,
    record_failed_poll,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PollOutcome:
    account: str
    ok: bool
    lines: int = 0
    transitions: int = 0
    notifications: int = 0
    skipped: int = 0
    error: str | None = None
    retry_after: float | None = None
    duration: float = 0.0

    def summary(self) -> str:
        if self.ok:
            return (f"{self.account}: ok, {self.lines} lines, {self.transitions} changes, "
                    f"{self.notifications} notifications queued, {self.skipped} items skipped "
                    f"({self.duration:.2f}s)")
        return f"{self.account}: FAILED: {self.error}"


@dataclass(frozen=True, slots=True)
class _Plan:
    diff: AccountDiff
    states: dict[str, LineState]
    outgoing: list[Outgoing]


class AccountPoller:
    """Polls one account. Keeps the account's known lines in memory between polls."""

    def __init__(
        self,
        account: str,
        client: LinqClient,
        sessions: sessionmaker[Session],
        metrics: Metrics,
        *,
        channels: Sequence[ChannelRule],
        notify_recovery: bool,
        clock: Callable[[], datetime],
    ) -> None:
        self.account = account
        self._client = client
        self._sessions = sessions
        self._metrics = metrics
        self._channels = channels
        self._notify_recovery = notify_recovery
        self._clock = clock
        self._known: dict[str, LineState] | None = None
        self._counts: Counter[str] = Counter()
        self.last_success_at: datetime | None = None
        # Webhook events change the same lines: they take this lock around their
        # detect-commit-remember, as a poll does, so neither works from stale memory.
        self.lock = asyncio.Lock()
        self._event_applied_at: dict[str, datetime] = {}
        # Told about every state once it is committed (the gate API's directory).
        self.observers: list[Callable[[Iterable[LineState]], None]] = []
        # Told about committed transitions (audits start from here); ``hold`` says how long
        # a transition's notifications wait before their first attempt (audit_wait).
        self.transition_observers: list[Callable[[Sequence[Transition]], None]] = []
        self.hold: Callable[[Transition], timedelta | None] = lambda transition: None

    async def poll(self) -> PollOutcome:
        with log_context(account=self.account):
            return await self._timed_poll()

    async def _timed_poll(self) -> PollOutcome:
        started_at = self._clock()
        started = time.perf_counter()
        try:
            outcome = await self._poll(started_at)
        except (ApiError, StoreError) as exc:
            outcome = await self._failed(started_at, exc)
        outcome = _with_duration(outcome, time.perf_counter() - started)
        self._metrics.poll_duration.labels(self.account).observe(outcome.duration)
        self._metrics.polls.labels(self.account, "success" if outcome.ok else "error").inc()
        self._metrics.up.labels(self.account).set(1 if outcome.ok else 0)
        return outcome

    async def ensure_loaded(self) -> None:
        """Load the account's lines from the database unless they are in memory."""
        if self._known is None:
            loaded = await asyncio.to_thread(load_lines, self._sessions, self.account)
            if self._known is None:
                self._known, self._counts = {}, Counter(dict.fromkeys(st.KNOWN_STATUSES, 0))
                self._remember(loaded.values())

    def find(self, phone_or_id: str) -> LineState | None:
        """A present line with this id or phone number (call ``ensure_loaded`` first)."""
        known = self._known or {}
        state = known.get(phone_or_id)
        if state is None:
            state = next((s for s in known.values()
                          if s.phone_number == phone_or_id and s.present), None)
        return state if state is not None and state.present else None

    def remember_event(self, state: LineState, transitions: Sequence[Transition]) -> None:
        """After a webhook's changes are committed: move memory and metrics forward."""
        self._remember([state])
        self._event_applied_at[state.line_id] = self._clock()
        for t in transitions:
            if t.kind is TransitionKind.CHANGED and t.from_status is not None:
                self._metrics.transitions.labels(self.account, t.from_status, t.to_status).inc()
            log.info("transition %s (webhook)", describe(t))
        self._announce(transitions)

    def _announce(self, transitions: Sequence[Transition]) -> None:
        if transitions:
            for observe in self.transition_observers:
                observe(transitions)

    async def _poll(self, started_at: datetime) -> PollOutcome:
        await self.ensure_loaded()
        result = await self._client.list_phone_numbers()
        async with self.lock:
            return await self._apply_poll(result, started_at)

    async def _apply_poll(self, result: ListResult, started_at: datetime) -> PollOutcome:
        assert self._known is not None
        parsed = result.lines
        for skipped in parsed.skipped:
            log.warning("skipped API item index=%d line_id=%s reason=%s", skipped.index,
                        skipped.line_id or "-", skipped.reason,
                        extra={"trace_id": result.trace_id})
        now = self._clock()
        # A line a webhook changed while this poll was in flight: the answer may predate
        # the event, so this poll leaves the line alone; the next one compares afresh.
        fresh = frozenset(line_id for line_id, at in self._event_applied_at.items()
                          if at >= started_at)
        self._event_applied_at = {k: v for k, v in self._event_applied_at.items()
                                  if v >= started_at}
        # Off the event loop, like the client's parse. Reading _known from the worker
        # thread is safe: only holders of self.lock change it, and this task holds it.
        plan = await asyncio.to_thread(self._plan, parsed, now, fresh)
        diff, states, outgoing = plan.diff, plan.states, plan.outgoing
        new_lines = [s for s in states.values() if s.line_id not in self._known]
        changed_lines = [s for s in states.values() if s.line_id in self._known]
        record = PollRecord(account=self.account, started_at=started_at, finished_at=now,
                            outcome="success", line_count=len(parsed.observations),
                            skipped=len(parsed.skipped), trace_id=result.trace_id)
        await asyncio.to_thread(
            commit_poll, self._sessions, record, new_lines=new_lines,
            changed_lines=changed_lines, transitions=diff.transitions, outgoing=outgoing,
        )
        # Committed: only now does memory (and what /metrics shows) move forward.
        self._remember(states.values())
        self._count(diff.transitions, len(parsed.skipped), now)
        self._announce(diff.transitions)
        return PollOutcome(self.account, ok=True, lines=len(parsed.observations),
                           transitions=len(diff.transitions), notifications=len(outgoing),
                           skipped=len(parsed.skipped))

    async def _failed(self, started_at: datetime, exc: ApiError | StoreError) -> PollOutcome:
        trace_id = getattr(exc, "trace_id", None)
        if isinstance(exc, ApiAuthError):
            log.error("poll failed: the Linq API rejected the token (HTTP %s); check the "
                      "account's token; no line state changed", exc.status,
                      extra={"trace_id": trace_id})
        else:
            log.error("poll failed: %s; no line state changed", exc,
                      extra={"trace_id": trace_id})
        if isinstance(exc, StoreError):
            self._known = None  # reload from the database next time: it is the truth
        record = PollRecord(account=self.account, started_at=started_at,
                            finished_at=self._clock(), outcome="error", error=str(exc)[:2000],
                            trace_id=trace_id)
        try:
            await asyncio.to_thread(record_failed_poll, self._sessions, record)
        except StoreError as store_exc:
            log.error("cannot record the failed poll: %s", store_exc)
        retry_after = exc.retry_after if isinstance(exc, ApiRateLimited) else None
        return PollOutcome(self.account, ok=False, error=str(exc), retry_after=retry_after)

    def _plan(self, parsed: PhoneNumberList, now: datetime, fresh: frozenset[str]) -> _Plan:
        """Detect, route and render: the pure middle of a poll."""
        assert self._known is not None
        observations = parsed.observations
        if fresh:
            observations = [o for o in observations if o.line_id not in fresh]
        with gc_paused():
            diff = detect_account(self._known, observations, account=self.account,
                                  now=now, protected=parsed.protected() | fresh)
            states = {s.line_id: s for s in diff.states}
            outgoing: list[Outgoing] = []
            for transition in diff.transitions:
                notices, routed = route(transition, states[transition.line_id],
                                        self._channels, notify_recovery=self._notify_recovery)
                states[transition.line_id] = routed
                hold = self.hold(transition) if notices else None
                outgoing += [Outgoing(n, render_notice(n), now + hold if hold else None)
                             for n in notices]
        return _Plan(diff, states, outgoing)

    def _remember(self, states: Iterable[LineState]) -> None:
        """Move memory and metrics forward to ``states`` (only after they are committed)."""
        assert self._known is not None
        counts = self._counts
        for state in states:
            before = self._known.get(state.line_id)
            if before is not None and before.present:
                counts[before.status] -= 1
            if state.present:
                counts[state.status] += 1
            self._known[state.line_id] = state
        self._metrics.line_series.update(states)
        self._metrics.update_service_status(states)
        for observe in self.observers:
            observe(states)
        for status, count in list(counts.items()):
            if count or status in st.KNOWN_STATUSES:
                self._metrics.lines.labels(self.account, status).set(count)
            else:  # an undocumented status no line has any more: drop its series
                self._metrics.lines.remove(self.account, status)
                del counts[status]

    def _count(self, transitions: Sequence[Transition], skipped: int, now: datetime) -> None:
        for t in transitions:
            if t.from_status is not None and t.status_changed:
                self._metrics.transitions.labels(self.account, t.from_status, t.to_status).inc()
            # A cold start sees every line for the first time: only degraded ones are news.
            quiet = t.kind is TransitionKind.FIRST_SEEN and t.to_status == st.HEALTHY
            log.log(logging.DEBUG if quiet else logging.INFO, "transition %s", describe(t))
        if skipped:
            self._metrics.skipped_items.labels(self.account).inc(skipped)
        self._metrics.last_success.labels(self.account).set(now.timestamp())
        self.last_success_at = now


def _with_duration(outcome: PollOutcome, seconds: float) -> PollOutcome:
    return replace(outcome, duration=seconds)
