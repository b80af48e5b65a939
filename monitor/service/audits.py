"""Reputation audits: diagnose a line when it degrades, and put the diagnosis in the alert.

When a line degrades to a status in its account's ``audit_on``, its notifications are
written held (``next_attempt_at`` = now + ``audit_wait``, see ``hold``) and an audit starts:
- finished in time: the primary driver and top action items join the waiting
  notifications' entries (rendered when sent), which are released at once;
- slower than ``audit_wait``: the hold expires and the alert goes out as it is; when the
  audit completes, a separate "diagnosis" notification goes to the same channels;
- an audit already running (Linq answers 202 with its ``audit_id``): we follow that one;
- 429 (the line's cooldown): no audit; the alert says so and is released;
- any failure: the alert is released as it is. An audit never blocks or loses an alert.
Every audit is stored (``audit show``; the gate API shows the latest).

Audits start within the account's budget (``AuditBudget``: so many at once, so many per
hour, none for a line audited within the cooldown), the worst lines first
(monitor/core/audit.py ``choose``). The alerts of lines left out are not held: they are
released at once, saying "no audit: budget" (or when the line was last audited), and the
skip is counted in ``linq_reputation_audits_skipped_total``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from monitor.api.audits import AuditClient, AuditCooldown
from monitor.core import status as st
from monitor.core.audit import (
    AuditBudget,
    Candidate,
    SkipReason,
    action_items,
    choose,
    enrichment_lines,
    skipped_lines,
)
from monitor.core.directory import AuditSummary, LineDirectory
from monitor.core.model import Transition, TransitionKind
from monitor.core.service import is_flagged
from monitor.errors import ApiError, StoreError
from monitor.metrics import Metrics
from monitor.store import audits as store
from monitor.store.schema import Audit

log = logging.getLogger(__name__)

POLL_EVERY = 1.0  # seconds between reads of a running audit
MAX_AUDIT_TIME = 300.0  # an audit still running after this is abandoned
HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class AuditPolicy:
    audit_on: frozenset[str]
    audit_wait: timedelta
    budget: AuditBudget = field(default_factory=AuditBudget)


@dataclass(frozen=True, slots=True)
class Outcome:
    state: str  # complete | skipped | error
    audit_id: str | None = None
    report: dict[str, Any] | None = None
    retry_after: float | None = None
    error: str | None = None

    def lines(self, phone_number: str) -> list[str]:
        return enrichment_lines(state=self.state, phone_number=phone_number, report=self.report,
                                retry_after=self.retry_after, error=self.error)


def summary(row: Audit) -> AuditSummary:
    items = action_items(row.report or {})
    return AuditSummary(state=row.state, started_at=row.started_at.isoformat(),
                        severity=row.severity, primary_driver=row.primary_driver,
                        top_action=str(items[0]["title"]) if items else None)


class AuditRunner:
    def __init__(self, sessions: Any, clients: Mapping[str, AuditClient],
                 policies: Mapping[str, AuditPolicy], directory: LineDirectory, *,
                 clock: Callable[[], datetime], on_queued: Callable[[], None] = lambda: None,
                 metrics: Metrics | None = None) -> None:
        self._sessions = sessions
        self._clients = clients
        self._policies = policies
        self._directory = directory
        self._clock = clock
        self._on_queued = on_queued
        self._metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()
        # The budget's memory (seeded from the stored audits by ``load``): automatic audits
        # running per account, when each account's audits of the last hour started, and
        # when each line (by phone number) was last audited or refused one by Linq.
        self._running: Counter[str] = Counter()
        self._started: dict[str, deque[datetime]] = {}
        self._audited_at: dict[str, datetime] = {}

    def wants(self, account: str, t: Transition) -> bool:
        """A degradation to a status the account audits (not a recovery, not a removal)."""
        policy = self._policies.get(account)
        if policy is None or t.to_status not in policy.audit_on:
            return False
        if t.kind not in (TransitionKind.CHANGED, TransitionKind.FIRST_SEEN,
                          TransitionKind.RETURNED):
            return False
        return t.from_status is None or st.rank(t.to_status) > st.rank(t.from_status)

    def hold(self, account: str) -> Callable[[Transition], timedelta | None]:
        policy = self._policies.get(account)

        def hold_for(t: Transition) -> timedelta | None:
            return policy.audit_wait if policy and self.wants(account, t) else None
        return hold_for

    def observer(self, account: str) -> Callable[[Sequence[Transition]], None]:
        def observe(transitions: Sequence[Transition]) -> None:
            wanted = [t for t in transitions if self.wants(account, t)]
            if wanted:
                self._start_within_budget(account, wanted)
        return observe

    def _start_within_budget(self, account: str, wanted: Sequence[Transition]) -> None:
        """Audit the worst of ``wanted`` that the budget allows; release the alerts of the
        rest at once, saying why they have no audit."""
        budget = self._policies[account].budget
        now = self._clock()
        started = self._started.setdefault(account, deque())
        while started and now - started[0] >= HOUR:
            started.popleft()
        by_candidate: dict[Candidate, Transition] = {}
        for t in wanted:
            line = self._directory.find(t.phone_number)
            flagged = line is not None and is_flagged(line.service_status)
            by_candidate.setdefault(Candidate(t.phone_number, t.to_status, flagged, t.at), t)
        choice = choose(list(by_candidate), budget, running=self._running[account],
                        started_last_hour=len(started), audited_at=self._audited_at, now=now)
        for candidate in choice.audit:
            t = by_candidate[candidate]
            started.append(now)
            self._audited_at[t.phone_number] = now
            self._running[account] += 1
            self._spawn(self._diagnose(account, t), f"audit:{t.phone_number}",
                        lambda _task: self._running.subtract([account]))
        if not choice.skip:
            return
        skipped = Counter(reason for _, reason in choice.skip)
        # Out of budget is worth a warning (a mass event, or a budget too small for the
        # fleet); a line re-audited too soon is routine.
        level = logging.INFO if set(skipped) == {SkipReason.COOLDOWN} else logging.WARNING
        log.log(level, "audits not started: %s", ", ".join(
            f"{n} {reason}" for reason, n in sorted(skipped.items())),
            extra={"account": account})
        if self._metrics is not None:
            for reason, n in skipped.items():
                self._metrics.audits_skipped.labels(account, reason.value).inc(n)
        notes = [(by_candidate[c], skipped_lines(
            reason, phone_number=c.phone_number, budget=budget,
            audited_at=self._audited_at.get(c.phone_number), now=now))
            for c, reason in choice.skip]
        self._spawn(self._release_skipped(account, notes), f"audits-skipped:{account}")

    def _spawn(self, work: Any, name: str,
               done: Callable[[asyncio.Task[None]], None] | None = None) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if done is not None:
            task.add_done_callback(done)

    async def _release_skipped(self, account: str,
                               notes: list[tuple[Transition, list[str]]]) -> None:
        try:
            await asyncio.to_thread(store.annotate, self._sessions, account, notes,
                                    now=self._clock())
        except StoreError as exc:  # the hold then simply expires at audit_wait
            log.error("cannot release the alerts of lines not audited: %s", exc,
                      extra={"account": account})
        finally:
            self._on_queued()

    async def cancel(self) -> None:
        """Abandon audits in flight (shutdown); their held alerts go out at audit_wait."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def run(self, account: str, phone_number: str, line_id: str | None) -> Outcome:
        """One audit, start to stored result (the ``audit PHONE`` command uses it too)."""
        row = await asyncio.to_thread(store.start, self._sessions, account=account,
                                      line_id=line_id, phone_number=phone_number,
                                      now=self._clock())
        outcome = await self._audit(self._clients[account], phone_number)
        await asyncio.to_thread(store.finish, self._sessions, row, state=outcome.state,
                                now=self._clock(), audit_id=outcome.audit_id,
                                report=outcome.report, error=outcome.error)
        latest = await asyncio.to_thread(self._summary, phone_number)
        if latest is not None:
            self._directory.set_audit(phone_number, latest)
        return outcome

    async def load(self) -> None:
        """Show the stored audits in the gate API, and seed the budget with them (at start)."""
        now = self._clock()

        def read() -> tuple[list[Audit], dict[str, list[datetime]]]:
            with self._sessions() as session:
                return store.latest_per_line(session), {
                    account: sorted(store.started_since(session, account, now - HOUR))
                    for account in self._policies}
        try:
            latest, started = await asyncio.to_thread(read)
        except SQLAlchemyError as exc:
            log.warning("stored audits not loaded for the gate API: %s", type(exc).__name__)
            return
        for row in latest:
            self._directory.set_audit(row.phone_number, summary(row))
            self._audited_at[row.phone_number] = row.started_at
        # A restart keeps spending the same hour's budget.
        for account, times in started.items():
            self._started[account] = deque(times)

    def _summary(self, phone_number: str) -> AuditSummary | None:
        with self._sessions() as session:
            row = store.latest(session, phone_number)
            return summary(row) if row is not None else None

    async def _audit(self, client: AuditClient, phone: str) -> Outcome:
        audit_id: str | None = None
        try:
            async with asyncio.timeout(MAX_AUDIT_TIME):
                audit_id = (await client.start(phone)).audit_id  # new, or the running one
                log.info("audit of %s: following %s", phone, audit_id)
                while True:
                    found = await client.get(phone, audit_id)
                    if found.get("status") == "complete" and isinstance(found.get("report"),
                                                                       dict):
                        return Outcome("complete", audit_id, found["report"])
                    if found.get("status") == "error":
                        reason = found.get("error")  # "short, generic, safe to display"
                        return Outcome("error", audit_id, error="Linq reported an error" + (
                            f": {reason[:200]}" if isinstance(reason, str) and reason else ""))
                    await asyncio.sleep(POLL_EVERY)
        except AuditCooldown as exc:
            return Outcome("skipped", audit_id, retry_after=exc.retry_after, error=str(exc))
        except ApiError as exc:
            return Outcome("error", audit_id, error=str(exc)[:500])
        except TimeoutError:
            return Outcome("error", audit_id,
                           error=f"still running after {MAX_AUDIT_TIME:.0f}s")

    async def _diagnose(self, account: str, t: Transition) -> None:
        transition_row: int | None = None
        try:
            transition_row = await asyncio.to_thread(store.transition_id, self._sessions, t)
            outcome = await self.run(account, t.phone_number, t.line_id)
            log.info("audit of %s: %s", t.phone_number, outcome.state,
                     extra={"account": account})
            if transition_row is None:
                return
            lines = outcome.lines(t.phone_number)
            _, missed = await asyncio.to_thread(store.enrich, self._sessions, transition_row,
                                                lines, now=self._clock())
            if missed and outcome.state == "complete":
                await asyncio.to_thread(store.queue_diagnosis, self._sessions, transition_row,
                                        missed, now=self._clock())
        except StoreError as exc:
            log.error("audit of %s not recorded: %s", t.phone_number, exc,
                      extra={"account": account})
        finally:
            if transition_row is not None:
                try:
                    await asyncio.to_thread(store.release, self._sessions, transition_row,
                                            now=self._clock())
                except StoreError as exc:  # the hold then simply expires at audit_wait
                    log.error("cannot release held notifications: %s", exc)
            self._on_queued()
