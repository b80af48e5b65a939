"""One poll cycle of one account: fetch → detect → policy → commit → expose.

The only I/O is at the two ends (the API call and one database transaction); the middle
is the pure core. If the commit fails, the in-memory state is left as it was, so the next
poll detects the same changes again: nothing is lost and nothing half-written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from monitor.api.client import LinqClient, ListResult
from monitor.api.gcpause import gc_paused
from monitor.api.payload import PhoneNumberList
from monitor.core import status as st
from monitor.core.chats import Assessment, ChatHealthSummary
from monitor.core.detect import NO_DEBOUNCE, AccountDiff, Debounce, detect_account
from monitor.core.event import EventPlan, plan_status_update
from monitor.core.model import LineMeta, LineRef, LineState, Notice, Transition, TransitionKind
from monitor.core.policy import NO_META, AlertPolicy, needs_review, note_change, reconcile, settle
from monitor.core.render import describe, render_entry
from monitor.core.service import FLAGGED
from monitor.core.watch import (
    DEFAULT_RULES,
    SOURCE,
    WatchRules,
    effective_status,
    plan_watch,
)
from monitor.errors import ApiAuthError, ApiError, ApiRateLimited, LeaseLost, StoreError
from monitor.logs import log_context
from monitor.metrics import Metrics
from monitor.service.watch import ChatWatch
from monitor.store.leases import Fence
from monitor.store.state import (
    Outgoing,
    PollRecord,
    commit_changes,
    commit_notices,
    commit_poll,
    load_lines,
    record_failed_poll,
)
from monitor.webhooks.event import StatusUpdate

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
        policy: AlertPolicy,
        clock: Callable[[], datetime],
        debounce: Debounce = NO_DEBOUNCE,
        meta: LineMetaLookup | None = None,
        silences: SilenceSource | None = None,
        observers: Sequence[Callable[[Iterable[LineState]], None]] = (),
        transition_observers: Sequence[Callable[[Sequence[Transition]], None]] = (),
        hold: Callable[[Transition], timedelta | None] = lambda transition: None,
        watch: WatchRules | None = DEFAULT_RULES,  # None: chat health off
        fence: Callable[[], Fence | None] = lambda: None,
    ) -> None:
        self.account = account
        self._client = client
        self._sessions = sessions
        self._metrics = metrics
        self._policy = policy
        self._debounce = debounce
        self._meta: LineMetaLookup = meta or _no_meta
        self._silences: SilenceSource = silences or _NO_SILENCES
        self._clock = clock
        self._known: dict[str, LineState] | None = None
        # Phone number -> id of the present line with it: webhooks name lines by number,
        # and a scan of 100k lines per event would stall the event loop.
        self._by_phone: dict[str, str] = {}
        self._review: set[str] = set()  # lines that time alone can make speak (policy tick)
        self._counts: Counter[str] = Counter()
        # A poll, a policy tick and a webhook event of one account must not interleave:
        # each computes new line states from the same memory, and the later commit would
        # undo the other's.
        self.lock = asyncio.Lock()
        self.last_success_at: datetime | None = None
        self.last_error: str | None = None  # why the latest poll failed, for /readyz
        # When a webhook last changed each line: a poll whose answer may predate the event
        # leaves that line alone.
        self._event_applied_at: dict[str, datetime] = {}
        # Told about every state once it is committed (the gate API's directory).
        self._observers = tuple(observers)
        # Told about committed transitions (audits start from here); ``hold`` says how long
        # a transition's notifications wait before their first attempt (audit_wait).
        self._transition_observers = tuple(transition_observers)
        self._hold = hold
        # The WATCH early warning (apply_chat_health): each line's thresholds, the latest
        # assessment of its chats, and the lines on WATCH, which polls and webhooks see as
        # WATCH where Linq says HEALTHY. ``fence``: the account's lease for those writes.
        self._chats = ChatWatch(watch)
        self._fence = fence

    async def poll(self, *, fence: Fence | None = None) -> PollOutcome:
        """One poll; with ``fence`` its commit happens only while that lease is ours.

        Raises LeaseLost (nothing written, memory dropped) when another replica took over.
        """
        with log_context(account=self.account):
            return await self._timed_poll(fence)

    async def ensure_loaded(self) -> None:
        """Load the account's lines from the database unless they are in memory."""
        if self._known is None:
            loaded = await asyncio.to_thread(load_lines, self._sessions, self.account)
            if self._known is None:
                self._known, self._counts = {}, Counter(dict.fromkeys(st.MONITOR_STATUSES, 0))
                self._by_phone = {}
                self._remember(loaded.values())
                self._chats.seed(loaded.values())

    def find(self, phone_or_id: str) -> LineState | None:
        """A present line with this id or phone number (call ``ensure_loaded`` first)."""
        known = self._known or {}
        state = known.get(phone_or_id)
        if state is None and (line_id := self._by_phone.get(phone_or_id)) is not None:
            state = known.get(line_id)
        return state if state is not None and state.present else None

    def plan_event(self, previous: LineState, update: StatusUpdate, *, received_at: datetime,
                   now: datetime) -> tuple[EventPlan, list[Outgoing]]:
        """What a webhook's status update does to a line: the same policy as a poll's."""
        meta = self._meta(previous)
        reputation = update.new_reputation
        if reputation is not None:  # HEALTHY per Linq is WATCH while the chats say so
            reputation = effective_status(reputation,
                                          watching=self._chats.watching(previous.line_id))
        plan = plan_status_update(
            previous, new_reputation=reputation, new_status=update.new_status,
            changed_at=update.changed_at, received_at=received_at, now=now,
            policy=self._policy, meta=meta,
            silenced=self._silences.silenced(previous, meta, now),
        )
        return plan, self._queue(plan.notices, now)

    async def refresh_silences(self) -> None:
        """Re-read the silences before planning a batch of webhook events (``plan_event``),
        as a poll and a policy round do before theirs."""
        await self._silences.refresh()

    def remember_event(self, state: LineState, transitions: Sequence[Transition]) -> None:
        """After a webhook's changes are committed: move memory and metrics forward."""
        self._remember([state])
        self._event_applied_at[state.line_id] = self._clock()
        for t in transitions:
            if t.kind is TransitionKind.CHANGED and t.from_status is not None:
                self._metrics.transitions.labels(self.account, t.from_status, t.to_status).inc()
            log.info("transition %s (webhook)", describe(t))
        self._announce(transitions)

    async def apply_chat_health(self, summaries: Sequence[ChatHealthSummary],
                                now: datetime) -> None:
        """Re-assess the lines these chat summaries are about (the sweep's and the chat
        webhook events', for lines whose chats changed) and record their HEALTHY <-> WATCH
        changes with source "chats": state, transitions and notifications in one
        transaction, under the account's lease, through the same policy as a poll.

        A summary of a line this account does not know is skipped. Raises StoreError
        (nothing written: the next poll sees the line as WATCH and records it) or LeaseLost
        (nothing written, memory dropped).
        """
        with log_context(account=self.account):
            async with self.lock:
                await self.ensure_loaded()
                await self._silences.refresh()
                await self._apply_chats(summaries, now)

    async def _apply_chats(self, summaries: Sequence[ChatHealthSummary],
                           now: datetime) -> None:
        assert self._known is not None
        self._chats.index(self._known)
        judged: dict[str, Assessment] = {}
        for summary in summaries:
            line_id = self._chats.line_of(summary)
            if summary.account != self.account or line_id is None:
                log.debug("chat summary for unknown line %s skipped", summary.phone_number)
                continue
            state = self._known[line_id]
            judged[line_id] = self._chats.assess(state, summary, self._meta(state))
        changed: list[LineState] = []
        transitions: list[Transition] = []
        outgoing: list[Outgoing] = []
        for line_id, assessment in judged.items():
            state = self._known[line_id]
            meta = self._meta(state)
            plan = plan_watch(state, watching=assessment.watch, now=now, policy=self._policy,
                              meta=meta, silenced=self._silences.silenced(state, meta, now))
            if plan.state is not state:
                changed.append(plan.state)
            transitions += plan.transitions
            outgoing += self._queue(plan.notices, now, judged)
        # Derived, not stored: kept whatever the commit does, so a failed one is made
        # good by the next poll (which sees these lines as WATCH) rather than forgotten.
        for line_id, assessment in judged.items():
            self._chats.keep(line_id, assessment)
        if not changed:
            return
        try:
            await asyncio.to_thread(commit_changes, self._sessions, changed_lines=changed,
                                    transitions=transitions, outgoing=outgoing, now=now,
                                    source=SOURCE, fence=self._fence())
        except LeaseLost:
            self._known = None
            raise
        self._remember(changed)
        for t in transitions:
            self._metrics.transitions.labels(self.account, t.from_status or "-",
                                             t.to_status).inc()
            log.info("transition %s (chats)", describe(t))
        self._announce(transitions)

    def _announce(self, transitions: Sequence[Transition]) -> None:
        if transitions:
            for observe in self._transition_observers:
                observe(transitions)

    def forget(self) -> None:
        """Drop what memory holds and stop exposing this account's series.

        For a replica that lost (or just took) the account's lease: the database is the
        truth, so the next poll here reloads it, and only the holder exports the lines.
        """
        if self._known is not None:
            gone = [replace(s, present=False) for s in self._known.values()]
            self._metrics.line_series.update(gone)
            self._metrics.flapping.update(gone, _is_flapping)
            self._metrics.line_info.update(gone)
            self._metrics.update_service_status(gone)
        self._review.clear()
        self._event_applied_at.clear()
        self._chats.clear()
        for status in list(self._counts):
            self._metrics.lines.remove(self.account, status)
        self._metrics.up.remove(self.account)
        self._metrics.last_success.remove(self.account)
        self._known, self._counts = None, Counter()
        self._by_phone = {}
        self.last_success_at = None

    async def _timed_poll(self, fence: Fence | None) -> PollOutcome:
        started_at = self._clock()
        started = time.perf_counter()
        try:
            outcome = await self._poll(started_at, fence)
        except LeaseLost:
            self._known = None  # another replica wrote since: reload if it comes back
            raise
        except (ApiError, StoreError) as exc:
            outcome = await self._failed(started_at, exc)
        outcome = _with_duration(outcome, time.perf_counter() - started)
        self._metrics.poll_duration.labels(self.account).observe(outcome.duration)
        self._metrics.polls.labels(self.account, "success" if outcome.ok else "error").inc()
        self._metrics.up.labels(self.account).set(1 if outcome.ok else 0)
        return outcome

    async def _poll(self, started_at: datetime, fence: Fence | None) -> PollOutcome:
        async with self.lock:
            await self.ensure_loaded()
        # The fetch is outside the lock: webhook events are applied meanwhile.
        result = await self._client.list_phone_numbers()
        async with self.lock:
            await self.ensure_loaded()  # a failed commit elsewhere may have dropped memory
            return await self._apply_poll(result, started_at, fence)

    async def _apply_poll(self, result: ListResult, started_at: datetime,
                          fence: Fence | None) -> PollOutcome:
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
        # The silences as stored now: one added while the answer was on its way applies.
        await self._silences.refresh()
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
            fence=fence,
        )
        # Committed: only now does memory (and what /metrics shows) move forward.
        self._remember(states.values())
        self._count(diff.transitions, len(parsed.skipped), now)
        self._announce(diff.transitions)
        return PollOutcome(self.account, ok=True, lines=len(parsed.observations),
                           transitions=len(diff.transitions),
                           notifications=sum(1 for o in outgoing if not o.notice.silenced),
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
        self.last_error = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
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
        """Detect and apply the alert policy: the pure middle of a poll."""
        assert self._known is not None
        observations = parsed.observations
        if fresh:
            observations = [o for o in observations if o.line_id not in fresh]
        observations = self._chats.overlay(observations)
        with gc_paused():
            diff = detect_account(self._known, observations, account=self.account,
                                  now=now, protected=parsed.protected() | fresh,
                                  debounce=self._debounce)
            states = {s.line_id: s for s in diff.states}
            outgoing: list[Outgoing] = []
            for transition in diff.transitions:
                state = states[transition.line_id]
                meta = self._meta(state)
                silenced = self._silences.silenced(state, meta, now)
                flapping, state = note_change(state, transition, self._policy, meta=meta,
                                              silenced=silenced)
                notices, state = reconcile(state, self._policy, now=now, meta=meta,
                                           silenced=silenced, transition=transition)
                states[transition.line_id] = state
                outgoing += self._queue(flapping + notices, now)
        return _Plan(diff, states, outgoing)

    async def review(self, *, fence: Fence | None = None) -> int:
        """The policy tick: notices that time alone makes due (escalations, reminders,
        silences ending, flapping settling). Returns how many were queued.

        With ``fence``, its writes happen only while that lease is ours: a replica that lost
        the account raises LeaseLost, writes nothing and drops its memory of the lines.
        """
        async with self.lock:
            if self._known is None or not self._review:
                return 0
            # The silences were re-read once for the whole round, by its caller (the
            # daemon's policy round, a one-shot poll): not once per account.
            now = self._clock()
            changed, outgoing = await asyncio.to_thread(self._review_lines, now)
            if not changed:
                return 0
            try:
                await asyncio.to_thread(commit_notices, self._sessions, changed_lines=changed,
                                        outgoing=outgoing, now=now, fence=fence)
            except LeaseLost:
                self._known = None
                raise
            self._remember(changed)
        for o in outgoing:
            log.info("policy: %s %s to %s%s", o.notice.kind, o.notice.entry.phone_number,
                     o.notice.channel, " (silenced)" if o.notice.silenced else "")
        return sum(1 for o in outgoing if not o.notice.silenced)

    def _review_lines(self, now: datetime) -> tuple[list[LineState], list[Outgoing]]:
        assert self._known is not None
        changed: list[LineState] = []
        outgoing: list[Outgoing] = []
        for line_id in sorted(self._review):
            before = self._known[line_id]
            meta = self._meta(before)
            silenced = self._silences.silenced(before, meta, now)
            settled, state = settle(before, self._policy, now=now, meta=meta, silenced=silenced)
            notices, state = reconcile(state, self._policy, now=now, meta=meta,
                                       silenced=silenced, source="policy")
            if state is not before:
                changed.append(state)
                outgoing += self._queue(settled + notices, now)
        return changed, outgoing

    def _queue(self, notices: Sequence[Notice], now: datetime,
               chats: Mapping[str, Assessment] | None = None) -> list[Outgoing]:
        """Outbox rows for ``notices``. Those announcing a change the account audits are
        held up to ``audit_wait`` so the diagnosis can join them (monitor/service/audits.py).
        A notice about a WATCH line carries why and its worst chats (from ``chats``, else
        the latest assessment)."""
        outgoing = []
        for n in notices:
            n = self._chats.annotate(n, chats or {})
            # A page about a FLAGGED line does not wait: its diagnosis may follow it.
            hold = (self._hold(n.transition) if n.transition is not None and not n.silenced
                    and n.entry.service != FLAGGED else None)
            outgoing.append(Outgoing(n, render_entry(n.entry, now=now),
                                     now + hold if hold else None))
        return outgoing

    def _remember(self, states: Iterable[LineState]) -> None:
        """Move memory and metrics forward to ``states`` (only after they are committed)."""
        assert self._known is not None
        counts = self._counts
        by_phone = self._by_phone
        for state in states:
            self._chats.follow(state)
            before = self._known.get(state.line_id)
            if before is not None and before.present:
                counts[before.status] -= 1
                if by_phone.get(before.phone_number) == state.line_id:
                    del by_phone[before.phone_number]
            if state.present:
                counts[state.status] += 1
                by_phone[state.phone_number] = state.line_id
            self._known[state.line_id] = state
            if needs_review(state, self._policy):
                self._review.add(state.line_id)
            else:
                self._review.discard(state.line_id)
        self._metrics.line_series.update(states)
        self._metrics.flapping.update(states, _is_flapping)
        self._metrics.line_info.update(states)
        self._metrics.update_service_status(states)
        for observe in self._observers:
            observe(states)
        for status, count in list(counts.items()):
            if count or status in st.MONITOR_STATUSES:
                self._metrics.lines.labels(self.account, status).set(count)
            else:  # an undocumented status no line has any more: drop its series
                self._metrics.lines.remove(self.account, status)
                del counts[status]

    def _count(self, transitions: Sequence[Transition], skipped: int, now: datetime) -> None:
        first_seen_logged = 0
        for t in transitions:
            if t.from_status is not None and t.status_changed:
                self._metrics.transitions.labels(self.account, t.from_status, t.to_status).inc()
            # A cold start sees every line for the first time: only degraded ones are news,
            # and only the first few of them: at 100k lines a cold start first sees ~12,000
            # degraded lines, and a log record each was ~6 % of its CPU (bench/RESULTS.md).
            level = logging.INFO
            if t.kind is TransitionKind.FIRST_SEEN:
                if t.to_status == st.HEALTHY or first_seen_logged >= FIRST_SEEN_LOGGED:
                    level = logging.DEBUG
                else:
                    first_seen_logged += 1
            if log.isEnabledFor(level):
                log.log(level, "transition %s", describe(t))
        unlogged = sum(1 for t in transitions if t.kind is TransitionKind.FIRST_SEEN
                       and t.to_status != st.HEALTHY) - first_seen_logged
        if unlogged > 0:
            log.info("%d more lines first seen degraded (each logged at DEBUG; `status` "
                     "lists them)", unlogged, extra={"account": self.account})
        if skipped:
            self._metrics.skipped_items.labels(self.account).inc(skipped)
        self._metrics.last_success.labels(self.account).set(now.timestamp())
        self.last_success_at = now
        self.last_error = None


# Degraded first sightings logged one by one per poll; the rest are counted in one line.
FIRST_SEEN_LOGGED = 50


def _with_duration(outcome: PollOutcome, seconds: float) -> PollOutcome:
    return replace(outcome, duration=seconds)


LineMetaLookup = Callable[[LineRef], LineMeta]  # the line's name and labels


class SilenceSource(Protocol):
    """The silences a planning step decides with (``service.silences.Silences``):
    ``refresh`` re-reads them from the database just before a step decides."""

    async def refresh(self) -> bool: ...

    def silenced(self, line: LineRef, meta: LineMeta, now: datetime) -> bool: ...


def _no_meta(line: LineRef) -> LineMeta:
    return NO_META


class _NoSilences:
    async def refresh(self) -> bool:
        return True

    def silenced(self, line: LineRef, meta: LineMeta, now: datetime) -> bool:
        return False


_NO_SILENCES = _NoSilences()


def _is_flapping(state: LineState) -> bool:
    return state.flapping

