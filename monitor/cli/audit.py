"""``reputation-monitor audit PHONE`` and ``audit show PHONE``: run or show an audit."""

from __future__ import annotations

import asyncio
from typing import Any

from monitor.api.audits import AuditClient
from monitor.config import Config
from monitor.core.audit import action_items, primary_driver
from monitor.core.directory import LineDirectory
from monitor.core.render import format_time
from monitor.service.audits import AuditPolicy, AuditRunner
from monitor.service.runtime import open_current, utcnow
from monitor.store import audits as store
from monitor.store.schema import Audit, Line
from monitor.webhooks.subscriptions import pick_account


async def run_audit(config: Config, *, phone: str, account_name: str | None) -> tuple[str, bool]:
    """Run one audit now; the printed report and whether it completed."""
    engine, sessions = await asyncio.to_thread(open_current, config)
    try:
        account = _account_of(sessions, config, phone, account_name)
        client = AuditClient(base_url=account.base_url,
                             token=account.api_token.get_secret_value(),
                             timeout=account.timeout.total_seconds(),
                             ca_bundle=account.ca_bundle)
        try:
            runner = AuditRunner(sessions, {account.name: client},
                                 {account.name: AuditPolicy(frozenset(), account.audit_wait)},
                                 LineDirectory(), clock=utcnow)
            line_id = _line_id(sessions, phone)
            outcome = await runner.run(account.name, phone, line_id)
        finally:
            await client.aclose()
        with sessions() as session:
            row = store.latest(session, phone)
            assert row is not None
            return describe(row), outcome.state == "complete"
    finally:
        engine.dispose()


def show_audit(config: Config, *, phone: str) -> str | None:
    engine, sessions = open_current(config, read_only=True)
    try:
        with sessions() as session:
            row = store.latest(session, phone)
            return describe(row) if row is not None else None
    finally:
        engine.dispose()


def describe(row: Audit) -> str:
    """A stored audit for people: outcome, driver, every action item, the evidence."""
    head = (f"audit of {row.phone_number} (account {row.account}), started "
            f"{format_time(row.started_at)}: {row.state}")
    if row.audit_id:
        head += f" (Linq audit id {row.audit_id})"
    out = [head]
    if row.state != "complete" or not row.report:
        out.append(f"  {row.error or 'no report'}")
        return "\n".join(out)
    report: dict[str, Any] = row.report
    out.append(f"severity: {report.get('severity', '-')}")
    out.append(f"primary driver: {primary_driver(report) or 'none named'}")
    drivers = [d for d in report.get("drivers") or [] if isinstance(d, dict)]
    if drivers:
        out.append("drivers:")
        out += [f"  - {d.get('key')}: {d.get('metric', '')} {d.get('summary', '')}".rstrip()
                for d in drivers]
    items = action_items(report)
    if items:
        out.append("action items:")
        for item in items:
            detail = f": {item['detail']}" if item.get("detail") else ""
            out.append(f"  {item.get('priority', '-')}. {item['title']} "
                       f"(impact {item.get('expected_impact', '-')}){detail}")
    evidence = report.get("evidence") if isinstance(report.get("evidence"), dict) else {}
    assert isinstance(evidence, dict)
    out.append(f"evidence: {len(evidence.get('opt_out_chats') or [])} chats messaged after "
               f"STOP, {len(evidence.get('unhealthy_chats') or [])} unhealthy chats")
    return "\n".join(out)


def _account_of(sessions: Any, config: Config, phone: str, name: str | None) -> Any:
    if name is None and len(config.accounts) > 1:
        with sessions() as session:
            known = session.query(Line.account).filter(Line.phone_number == phone).first()
        if known is not None:
            name = known[0]
    return pick_account(config, name)


def _line_id(sessions: Any, phone: str) -> str | None:
    with sessions() as session:
        row = session.query(Line.line_id).filter(Line.phone_number == phone).first()
        return row[0] if row is not None else None
