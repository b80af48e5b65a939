"""What an alert says about a line's reputation audit. Pure.

``enrichment_lines`` is the whole contract with rendering: a stored audit in, the text
lines to add to a message out, so whatever renders messages can place them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

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

