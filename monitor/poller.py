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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from monitor.api.client import LinqClient
from monitor.api.payload import PhoneNumberList
from monitor.core import status as st
from monitor.core.detect import NO_DEBOUNCE, AccountDiff, Debounce, detect_account
from monitor.core.model import LineMeta, LineState, Notice, Transition, TransitionKind
from monitor.core.policy import NO_META, AlertPolicy, needs_review, note_change, reconcile, settle
from monitor.core.render import describe, render_entry
from monitor.errors import ApiAuthError, ApiError, ApiRateLimited, LeaseLost, StoreError
from monitor.gcpause import gc_paused
from monitor.logs import log_context
from monitor.metrics import Metrics
from monitor.store.leases import Fence
from monitor.store.state import (
    Outgoing,
    PollRecord,
    commit_notices,
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
        policy: AlertPolicy,
        clock: Callable[[], datetime],
        debounce: Debounce = NO_DEBOUNCE,
        meta: LineMetaLookup | None = None,
        silenced: SilenceCheck | None = None,
    ) -> None:
        self.account = account
        self._client = client
        self._sessions = sessions
        self._metrics = metrics
        self._policy = policy
        self._debounce = debounce
        self._meta: LineMetaLookup = meta or _no_meta
        self._silenced: SilenceCheck = silenced or _never_silenced
        self._clock = clock
        self._known: dict[str, LineState] | None = None
        self._review: set[str] = set()  # lines that time alone can make speak (policy tick)
        self._counts: Counter[str] = Counter()
        # A poll and a policy tick of one account must not interleave: each computes new
        # line states from the same memory, and the later commit would undo the other's.
        self._busy = asyncio.Lock()
        self.last_success_at: datetime | None = None
        self.last_error: str | None = None  # why the latest poll failed, for /readyz

    async def poll(self, *, fence: Fence | None = None) -> PollOutcome:
        """One poll; with ``fence`` its commit happens only while that lease is ours.

        Raises LeaseLost (nothing written, memory dropped) when another replica took over.
        """
        with log_context(account=self.account):
            async with self._busy:
                return await self._timed_poll(fence)

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
        self._review.clear()
        for status in list(self._counts):
            self._metrics.lines.remove(self.account, status)
        self._metrics.up.remove(self.account)
        self._metrics.last_success.remove(self.account)
        self._known, self._counts = None, Counter()
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
        if self._known is None:
            loaded = await asyncio.to_thread(load_lines, self._sessions, self.account)
            self._known, self._counts = {}, Counter(dict.fromkeys(st.KNOWN_STATUSES, 0))
            self._remember(loaded.values())
        result = await self._client.list_phone_numbers()
        parsed = result.lines
        for skipped in parsed.skipped:
            log.warning("skipped API item index=%d line_id=%s reason=%s", skipped.index,
                        skipped.line_id or "-", skipped.reason,
                        extra={"trace_id": result.trace_id})
        now = self._clock()
        # Off the event loop, like the client's parse. Reading _known from the worker
        # thread is safe: only this poll's task changes it, and that task waits here.
        plan = await asyncio.to_thread(self._plan, parsed, now)
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

    def _plan(self, parsed: PhoneNumberList, now: datetime) -> _Plan:
        """Detect and apply the alert policy: the pure middle of a poll."""
        assert self._known is not None
        with gc_paused():
            diff = detect_account(self._known, parsed.observations, account=self.account,
                                  now=now, protected=parsed.protected(),
                                  debounce=self._debounce)
            states = {s.line_id: s for s in diff.states}
            outgoing: list[Outgoing] = []
            for transition in diff.transitions:
                state = states[transition.line_id]
                meta = self._meta(self.account, state.line_id, state.phone_number)
                silenced = self._silenced(state, meta, now)
                flapping, state = note_change(state, transition, self._policy, meta=meta,
                                              silenced=silenced)
                notices, state = reconcile(state, self._policy, now=now, meta=meta,
                                           silenced=silenced, transition=transition)
                states[transition.line_id] = state
                outgoing += _queue(flapping + notices, now)
        return _Plan(diff, states, outgoing)

    async def review(self) -> int:
        """The policy tick: notices that time alone makes due (escalations, reminders,
        silences ending, flapping settling). Returns how many were queued."""
        async with self._busy:
            if self._known is None or not self._review:
                return 0
            now = self._clock()
            changed, outgoing = await asyncio.to_thread(self._review_lines, now)
            if not changed:
                return 0
            await asyncio.to_thread(commit_notices, self._sessions, changed_lines=changed,
                                    outgoing=outgoing, now=now)
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
            meta = self._meta(self.account, before.line_id, before.phone_number)
            silenced = self._silenced(before, meta, now)
            settled, state = settle(before, self._policy, now=now, meta=meta, silenced=silenced)
            notices, state = reconcile(state, self._policy, now=now, meta=meta,
                                       silenced=silenced, source="policy")
            if state is not before:
                changed.append(state)
                outgoing += _queue(settled + notices, now)
        return changed, outgoing

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
            if needs_review(state, self._policy):
                self._review.add(state.line_id)
            else:
                self._review.discard(state.line_id)
        self._metrics.line_series.update(states)
        self._metrics.flapping.update(states, _is_flapping)
        self._metrics.line_info.update(states)
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
        self.last_error = None


def _with_duration(outcome: PollOutcome, seconds: float) -> PollOutcome:
    return replace(outcome, duration=seconds)


LineMetaLookup = Callable[[str, str, str], LineMeta]  # (account, line_id, phone) -> meta
SilenceCheck = Callable[[LineState, LineMeta, datetime], bool]


def _no_meta(account: str, line_id: str, phone_number: str) -> LineMeta:
    return NO_META


def _never_silenced(state: LineState, meta: LineMeta, now: datetime) -> bool:
    return False


def _is_flapping(state: LineState) -> bool:
    return state.flapping


def _queue(notices: Sequence[Notice], now: datetime) -> list[Outgoing]:
    return [Outgoing(n, render_entry(n.entry, now=now)) for n in notices]
