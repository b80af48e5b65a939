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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from monitor.api.audits import AuditClient, AuditCooldown
from monitor.core import status as st
from monitor.core.audit import action_items, enrichment_lines
from monitor.core.directory import AuditSummary, LineDirectory
from monitor.core.model import Transition, TransitionKind
from monitor.errors import ApiError, StoreError
from monitor.store import audits as store
from monitor.store.schema import Audit

log = logging.getLogger(__name__)

POLL_EVERY = 1.0  # seconds between reads of a running audit
MAX_AUDIT_TIME = 300.0  # an audit still running after this is abandoned


@dataclass(frozen=True, slots=True)
class AuditPolicy:
    audit_on: frozenset[str]
    audit_wait: timedelta


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
                 ) -> None:
        self._sessions = sessions
        self._clients = clients
        self._policies = policies
        self._directory = directory
        self._clock = clock
        self._on_queued = on_queued
        self._tasks: set[asyncio.Task[None]] = set()

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
            for t in transitions:
                if self.wants(account, t):
                    task = asyncio.create_task(self._diagnose(account, t),
                                               name=f"audit:{t.phone_number}")
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        return observe

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
        """Show the stored audits in the gate API (at start)."""
        def read() -> list[tuple[str, AuditSummary]]:
            with self._sessions() as session:
                return [(row.phone_number, summary(row))
                        for row in store.latest_per_line(session)]
        try:
            for phone, audit in await asyncio.to_thread(read):
                self._directory.set_audit(phone, audit)
        except SQLAlchemyError as exc:
            log.warning("stored audits not loaded for the gate API: %s", type(exc).__name__)

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
