"""``reputation-monitor audit PHONE`` and ``audit show PHONE``: run or show an audit.

An audit is run only for a line the monitor knows, so that a typo (or ``audit show``
without its phone number) never starts a real audit at Linq. A line is known when the
monitor has recorded it present in an account (the ``lines`` table: no API call), or,
when the database does not have it present (a fresh database, a line added since the
last poll, a line recorded as removed), when the account's current listing from the API
has it. Anything else is refused with a UsageError (exit 2) that says where it looked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from monitor.api.audits import AuditClient
from monitor.api.client import LinqClient
from monitor.config import AccountConfig, Config
from monitor.core.audit import action_items, primary_driver
from monitor.core.directory import LineDirectory
from monitor.core.render import format_time
from monitor.errors import UsageError
from monitor.service.audits import AuditPolicy, AuditRunner
from monitor.service.runtime import open_current, utcnow
from monitor.store import audits as store
from monitor.store.engine import safe_url
from monitor.store.schema import Audit
from monitor.webhooks.subscriptions import pick_account

USAGE = "usage: audit PHONE | audit show PHONE"


def parse_words(words: Sequence[str]) -> tuple[bool, str]:
    """``audit``'s words as (show?, phone). Raises UsageError for anything else."""
    if list(words) == ["show"]:
        raise UsageError(f"audit show: the phone number is missing ({USAGE})")
    if len(words) == 2 and words[0] == "show":
        return True, words[1]
    if len(words) == 1:
        return False, words[0]
    raise UsageError(f"audit: expected one phone number, got {' '.join(words)!r} ({USAGE})")


async def run_audit(config: Config, *, phone: str, account_name: str | None) -> tuple[str, bool]:
    """Run one audit now; the printed report and whether it completed.

    Raises UsageError when ``phone`` is not a known line (see the module docstring).
    """
    engine, sessions = await asyncio.to_thread(open_current, config)
    try:
        account, line_id = await find_line(config, sessions, phone=phone,
                                           account_name=account_name)
        client = AuditClient(base_url=account.base_url,
                             token=account.api_token.get_secret_value(),
                             timeout=account.timeout.total_seconds(),
                             ca_bundle=account.ca_bundle_path)
        try:
            runner = AuditRunner(sessions, {account.name: client},
                                 {account.name: AuditPolicy(frozenset(), account.audit_wait)},
                                 LineDirectory(), clock=utcnow)
            outcome = await runner.run(account.name, phone, line_id)
        finally:
            await client.aclose()
        with sessions() as session:
            row = store.latest(session, phone)
            assert row is not None
            return describe(row), outcome.state == "complete"
    finally:
        engine.dispose()


async def find_line(config: Config, sessions: sessionmaker[Session], *, phone: str,
                    account_name: str | None) -> tuple[AccountConfig, str]:
    """The account and line id of the line ``phone``, among the accounts ``--account``
    names (all configured ones when it names none).

    Looks in the monitor's own record first; asks the API for each account's current
    listing only when no account there has the line present. Raises UsageError when no
    account has it, or when several do and ``--account`` names none.
    """
    accounts = [pick_account(config, account_name)] if account_name else list(config.accounts)
    by_name = {a.name: a for a in accounts}

    def recorded() -> list[tuple[str, str, bool]]:
        with sessions() as session:
            return [(line.account, line.line_id, line.present)
                    for line in store.lines_with_phone(session, phone)
                    if line.account in by_name]
    seen = await asyncio.to_thread(recorded)
    found = [(name, line_id) for name, line_id, present in seen if present]
    if not found:
        for account in accounts:
            async with LinqClient(base_url=account.base_url,
                                  token=account.api_token.get_secret_value(),
                                  timeout=account.timeout.total_seconds(),
                                  max_retries=account.max_retries,
                                  ca_bundle=account.ca_bundle_path) as client:
                listed = await client.list_phone_numbers()
            found += [(account.name, o.line_id) for o in listed.lines.observations
                      if o.phone_number == phone]
    if len(found) > 1:
        names = ", ".join(sorted({name for name, _ in found}))
        raise UsageError(f"{phone} is a line of the accounts {names}: name one with --account")
    if not found:
        where = ("account " if len(accounts) == 1 else "any of the accounts ") + ", ".join(
            f"{a.name!r} ({a.base_url})" for a in accounts)
        removed = sorted({name for name, _, present in seen if not present})
        recorded_as = (f"the monitor recorded it removed from {', '.join(removed)}"
                       if removed else "the monitor has not seen it")
        raise UsageError(
            f"{phone} is not a line of {where}: {recorded_as} (database "
            f"{safe_url(config.database_url())}) and the account's current listing from "
            "the API does not have it. Nothing was audited; give the line's E.164 phone "
            "number as `status --all` shows it")
    name, line_id = found[0]
    return by_name[name], line_id


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
