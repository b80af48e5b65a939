"""What an alert says about a line's reputation audit, and which lines get one. Pure.

``enrichment_lines`` is the whole contract with rendering: a stored audit in, the text
lines to add to a message out, so whatever renders messages can place them.

``choose`` spends an account's audit budget (``AuditBudget``): the worst lines first, a
line audited within the cooldown never, and no more than the budget allows; every line left
out is named with its reason, so its alert can say so instead of waiting for an audit.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.core import status as st
from monitor.core.render import format_duration

TOP_ACTIONS = 3


def action_items(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The report's action items, first priority first (malformed ones dropped)."""
    items = [i for i in report.get("action_items") or [] if isinstance(i, Mapping)
             and isinstance(i.get("title"), str)]
    return sorted(items, key=_priority)


def _priority(item: Mapping[str, Any]) -> int:
    value = item.get("priority")
    return value if isinstance(value, int) else 99


def primary_driver(report: Mapping[str, Any]) -> str | None:
    """The primary driver's key, with its metric when the drivers list explains it."""
    key = report.get("primary_driver")
    if not isinstance(key, str) or not key:
        return None
    for driver in report.get("drivers") or []:
        if isinstance(driver, Mapping) and driver.get("key") == key:
            metric = driver.get("metric")
            return f"{key} ({metric})" if isinstance(metric, str) and metric else key
    return key


def enrichment_lines(
    *, state: str, phone_number: str, report: Mapping[str, Any] | None = None,
    retry_after: float | None = None, error: str | None = None,
) -> list[str]:
    """Lines for an alert about ``phone_number`` given its audit's outcome.

    ``state``: complete (driver and top actions), skipped (Linq's cooldown), error.
    """
    if state == "skipped":
        wait = (f"; the next one is possible in "
                f"{format_duration(timedelta(seconds=retry_after))}") if retry_after else ""
        return [f"Diagnosis: no reputation audit now (Linq's per-line audit cooldown{wait})."]
    if state != "complete" or report is None:
        return [f"Diagnosis: the reputation audit did not complete ({error or 'unknown error'});"
                " this alert stands on its own."]
    lines = ["Diagnosis (Linq reputation audit):"]
    driver = primary_driver(report)
    lines.append(f"  Primary driver: {driver or 'none named'}")
    for item in action_items(report)[:TOP_ACTIONS]:
        impact = item.get("expected_impact")
        detail = item.get("detail")
        lines.append(f"  {item.get('priority', '-')}. {item['title']}"
                     + (f": {detail}" if isinstance(detail, str) and detail else "")
                     + (f" (impact: {impact})" if isinstance(impact, str) else ""))
    lines.append(f"  Full report: reputation-monitor audit show {phone_number}")
    return lines



@dataclass(frozen=True, slots=True)
class AuditBudget:
    """How many automatic audits an account may start (the config's ``audit_max_running``,
    ``audit_max_per_hour``, ``audit_cooldown``; see docs/webhooks-and-audits.md for why
    the defaults are what they are)."""

    max_running: int = 4
    max_per_hour: int = 60
    cooldown: timedelta = timedelta(hours=6)


class SkipReason(enum.StrEnum):
    RUNNING = "running"  # the account's audits at once are all running
    PER_HOUR = "per_hour"  # the account started its audits per hour already
    COOLDOWN = "cooldown"  # the line was audited within the cooldown


@dataclass(frozen=True, slots=True)
class Candidate:
    """A line that degraded to a status its account audits."""

    phone_number: str
    status: str  # the status it turned to
    flagged: bool  # Linq's service status is FLAGGED
    turned_at: datetime  # when it turned


def worst_first(candidate: Candidate) -> tuple[bool, float, datetime, str]:
    """FLAGGED lines, then by status (undocumented, CRITICAL, ...), then the longest turned."""
    return (not candidate.flagged, -st.rank(candidate.status), candidate.turned_at,
            candidate.phone_number)


@dataclass(frozen=True, slots=True)
class Choice:
    audit: list[Candidate]  # worst first
    skip: list[tuple[Candidate, SkipReason]]


def choose(candidates: Sequence[Candidate], budget: AuditBudget, *, running: int,
           started_last_hour: int, audited_at: Mapping[str, datetime],
           now: datetime) -> Choice:
    """Which candidates to audit now, worst first, given ``running`` audits of the account,
    ``started_last_hour`` audits it started in the hour before ``now``, and when each line
    was last audited (``audited_at``, by phone number). A line within the cooldown is
    skipped before the budget is counted, so it never takes a worse line's place."""
    audit: list[Candidate] = []
    skip: list[tuple[Candidate, SkipReason]] = []
    chosen: set[str] = set()
    for candidate in sorted(candidates, key=worst_first):
        last = audited_at.get(candidate.phone_number)
        if candidate.phone_number in chosen or (last is not None
                                                and now - last < budget.cooldown):
            skip.append((candidate, SkipReason.COOLDOWN))
        elif running + len(audit) >= budget.max_running:
            skip.append((candidate, SkipReason.RUNNING))
        elif started_last_hour + len(audit) >= budget.max_per_hour:
            skip.append((candidate, SkipReason.PER_HOUR))
        else:
            audit.append(candidate)
            chosen.add(candidate.phone_number)
    return Choice(audit, skip)


def skipped_lines(reason: SkipReason, *, phone_number: str, budget: AuditBudget,
                  audited_at: datetime | None, now: datetime) -> list[str]:
    """What the alert of a line left without an audit says instead of waiting for one."""
    if reason is SkipReason.COOLDOWN:
        ago = format_duration(now - audited_at) if audited_at is not None else "moments"
        return [f"Diagnosis: no audit: this line was audited {ago} ago, within the "
                f"audit cooldown ({format_duration(budget.cooldown)}); its latest report: "
                f"reputation-monitor audit show {phone_number}"]
    limit = (f"{budget.max_running} audits of this account already running"
             if reason is SkipReason.RUNNING
             else f"{budget.max_per_hour} audits of this account started in the last hour")
    return [f"Diagnosis: no audit: budget ({limit}; worse lines went first). To audit "
            f"this line now: reputation-monitor audit {phone_number}"]
