"""Every query the audit path, the deliverer and the policy round run is served by an index.

The SQL is not listed by hand: it is captured (SQLAlchemy's ``before_cursor_execute``) while
the real code runs against a database that already holds a history (delivered
notifications, transitions, audits and lines of other lines), and each statement is then
explained with the parameters it ran with. A full scan of ``notifications``,
``transitions``, ``audits`` or ``lines`` fails the test, which prints every plan.

SQLite: ``EXPLAIN QUERY PLAN``; a ``SCAN <table>`` without ``USING ... INDEX`` is a full scan.
PostgreSQL: ``EXPLAIN`` with ``enable_seqscan = off``. A test database holds a few thousand
rows, where a sequential scan is the cheapest plan whether or not an index exists, so the
planner would hide the very thing under test; with sequential scans priced out, it takes any
index that can serve the query, and a ``Seq Scan`` left in the plan means none can.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert

from monitor.config import parse_config
from monitor.core.identity import Identity
from monitor.service.daemon import Daemon
from monitor.service.runtime import open_database
from monitor.simulator import Simulator, SimulatorServer
from monitor.store.schema import Audit, Line, Notification, TransitionRow
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.both_databases, pytest.mark.timeout(120)]

WATCHED = ("notifications", "transitions", "audits", "lines")
HISTORY = 3000  # delivered notifications (and their transitions) of other lines
LINES = 8


@dataclass
class Captured:
    phase: str = "setup"
    # (phase, sql) -> the parameters of its first run in that phase
    statements: dict[tuple[str, str], Any] = field(default_factory=dict)

    def listen(self, engine: Engine) -> None:
        def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                   executemany: bool) -> None:
            if self.phase == "setup":
                return
            # executemany: a list of parameter sets, the first one will do (an INSERT's
            # "insertmanyvalues" batch arrives as one dict, and is not explained anyway)
            many = executemany and isinstance(parameters, list | tuple) and parameters
            params = parameters[0] if many else parameters
            self.statements.setdefault((self.phase, statement), params)
        event.listen(engine, "before_cursor_execute", record)


def fill_history(engine: Engine, *, now: datetime) -> None:
    """What a daemon that has run for a while holds: lines, their transitions, delivered
    notifications and finished audits, none of them about the lines under test."""
    old = now - timedelta(days=30)
    with engine.begin() as conn:
        conn.execute(insert(Line), [
            {"account": "main", "line_id": f"old-{i}", "phone_number": f"+1303555{i:04d}",
             "status": "HEALTHY", "since": old, "present": True, "updated_at": old}
            for i in range(HISTORY // 3)])
        conn.execute(insert(TransitionRow), [
            {"account": "main", "line_id": f"old-{i % (HISTORY // 3)}",
             "phone_number": f"+1303555{i % (HISTORY // 3):04d}", "kind": "changed",
             "from_status": "HEALTHY", "to_status": "CRITICAL", "at": old + timedelta(
                 seconds=i), "source": "poll"} for i in range(HISTORY)])
        ids = [row[0] for row in conn.exec_driver_sql(
            "SELECT id FROM transitions ORDER BY id")]
        conn.execute(insert(Notification), [
            {"transition_id": t, "account": "main", "line_id": "old", "channel": "pager",
             "kind": "degraded", "title": "t", "body": "b", "created_at": old,
             "state": "delivered", "attempts": 1, "next_attempt_at": old,
             "delivered_at": old, "deferred": False} for t in ids])
        conn.execute(insert(Audit), [
            {"account": "main", "line_id": f"old-{i}", "phone_number": f"+1303555{i:04d}",
             "state": "complete", "started_at": old, "completed_at": old}
            for i in range(HISTORY // 3)])


def explain(engine: Engine, sql: str, params: Any) -> list[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()
            return [str(row[-1]) for row in rows]
        conn.exec_driver_sql("SET enable_seqscan = off")
        return [str(row[0]) for row in conn.exec_driver_sql("EXPLAIN " + sql, params).all()]


def full_scans(plan: list[str]) -> list[str]:
    tables = "|".join(WATCHED)
    sqlite_scan = re.compile(rf"^SCAN ({tables})\b(?!.*USING)")
    pg_scan = re.compile(rf"Seq Scan on ({tables})\b")
    return [step for step in plan if sqlite_scan.search(step.strip()) or pg_scan.search(step)]


def explained(engine: Engine, captured: Captured) -> Iterator[tuple[str, str, list[str]]]:
    for (phase, sql), params in captured.statements.items():
        verb = sql.lstrip().split(None, 1)[0].upper()
        if verb not in ("SELECT", "UPDATE", "DELETE", "WITH"):
            continue  # an INSERT scans nothing; BEGIN, PRAGMA, SET, ... are not queries
        yield phase, sql, explain(engine, sql, params)


@pytest.mark.slow  # a populated database per case and database: .ci/run's slow suite
async def test_it_serves_every_audit_delivery_and_policy_query_by_an_index(
        database_url: str, sim: Simulator, sim_server: SimulatorServer, receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("monitor.service.audits.POLL_EVERY", 0.02)
    config = parse_config({
        "accounts": [{"name": "main", "base_url": sim_server.url, "token": "sim-token",
                      "max_retries": 0, "audit_wait": "10m", "audit_max_running": 2}],
        "database": {"url": database_url},
        "alerts": {"channels": [{"name": "pager", "url": receiver.url("pager"),
                                 "group_wait": "0s", "min_status": "CRITICAL"},
                                # hears only after 1s: the policy round has work to commit
                                {"name": "lead", "url": receiver.url("lead"),
                                 "group_wait": "0s", "min_status": "CRITICAL",
                                 "escalate_after": "1s"},
                                # refused at once: the deliverer records a failure
                                {"name": "broken", "url": "json://127.0.0.1:9/",
                                 "group_wait": "0s", "min_status": "CRITICAL"},
                                # quiet all day but a minute: CRITICAL rows are parked
                                {"name": "night", "url": receiver.url("night"),
                                 "group_wait": "0s", "min_status": "CRITICAL",
                                 "quiet_hours": "00:00-23:59",
                                 "quiet_hours_critical": "defer"}]},
    })
    engine, sessions = open_database(config)
    fill_history(engine, now=datetime.now(UTC))
    captured = Captured()
    captured.listen(engine)
    daemon = Daemon(config, engine, sessions, me=Identity(name="t", host="t", pid=1),
                    alone=True)
    phones = [f"+120255501{i:02d}" for i in range(LINES)]
    # The daemon's own objects (Daemon._runtime, _policy_round): the test runs the very
    # code paths the daemon schedules, one at a time.
    captured.phase = "start"  # the runtime loads stored audits (gate API, budget)
    async with daemon._runtime as rt:
        for phone in phones:
            sim.add_line(phone)
        captured.phase = "poll"
        assert (await rt.pollers["main"].poll()).ok
        sim.audits.start_cooldown(phones[0], 3600)  # one audit gets Linq's 429
        sim.audits.configure(fail=False)
        for phone in phones:
            sim.set_status(phone, "CRITICAL")
        assert (await rt.pollers["main"].poll()).ok
        captured.phase = "audit"
        await rt.audits.drain()
        captured.phase = "deliver"
        async with asyncio.timeout(30):
            while not receiver.messages:
                await rt.deliverer.run_once()
                await asyncio.sleep(0.05)
        await rt.deliverer.run_once()
        await rt.deliverer.refresh_pending_gauge()
        await asyncio.sleep(1.1)  # the lead's escalate_after: the one real wait here
        captured.phase = "policy"
        await daemon._policy_round()
        captured.phase = "setup"

    plans = list(explained(engine, captured))
    engine.dispose()
    report = "\n\n".join(f"[{phase}] {sql}\n  " + "\n  ".join(plan)
                         for phase, sql, plan in plans)
    print(report)  # every plan, for `pytest -s`
    assert {phase for phase, _, _ in plans} >= {"start", "audit", "deliver", "policy"}, report
    bad = [(phase, sql, plan) for phase, sql, plan in plans if full_scans(plan)]
    assert not bad, "full scans:\n\n" + "\n\n".join(
        f"[{phase}] {sql}\n  " + "\n  ".join(plan) for phase, sql, plan in bad)
    # A cold poll stamps every first sighting with the same ``at``: an index on ``at`` alone
    # then narrows nothing, so the audit path's lookups by line must not pick it (SQLite
    # did, for ``annotate``: 0.06 s a chunk of 500 lines at 100k lines, bench/RESULTS.md).
    by_at = [(phase, sql, plan) for phase, sql, plan in plans
             if any("ix_transitions_at" in step for step in plan)]
    assert not by_at, "\n\n".join(f"[{phase}] {sql}\n  " + "\n  ".join(plan)
                                  for phase, sql, plan in by_at)
