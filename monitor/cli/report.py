"""The ``report`` command: per line, time in each status, degradations, time to recover.

Only time the monitor watched counts: a line of an account first polled after the
window's start is accounted from that first poll, and its shares are of that watched part.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.core import status as st
from monitor.core.render import format_duration, format_time
from monitor.core.report import LineReport, account_line
from monitor.store.queries import LineHistory

_COLUMNS = (*st.MONITOR_STATUSES, "other")


@dataclass(frozen=True, slots=True)
class Window:
    """The window asked for, and from when the monitor watched each account inside it."""

    start: datetime
    end: datetime
    watched_from: Mapping[str, datetime] = field(default_factory=dict)  # later than start

    @classmethod
    def of(cls, *, start: datetime, end: datetime, first_polls: Mapping[str, datetime]
           ) -> Window:
        """``first_polls``: each account's first poll (store.queries.first_polls)."""
        return cls(start, end, {account: min(at, end) for account, at in first_polls.items()
                                if at > start})

    def start_of(self, account: str) -> datetime:
        """Where the account's watched part of the window begins."""
        return self.watched_from.get(account, self.start)

    def watched(self, account: str) -> timedelta:
        return self.end - self.start_of(account)


def build(histories: list[LineHistory], window: Window) -> list[tuple[LineHistory, LineReport]]:
    rows = [(h, account_line(h.initial, h.changes, start=window.start_of(h.account),
                             end=window.end)) for h in histories]
    # Worst first: most time CRITICAL, then AT_RISK, then most degradations.
    rows.sort(key=lambda r: (-r[1].seconds.get(st.CRITICAL, 0), -r[1].seconds.get(st.AT_RISK, 0),
                             -r[1].degradations, r[0].account, r[0].phone_number))
    return rows


def to_markdown(rows: list[tuple[LineHistory, LineReport]], window: Window) -> str:
    out = [f"# Line reputation report: {format_time(window.start)} to "
           f"{format_time(window.end)}", ""]
    for account, since in sorted(window.watched_from.items()):
        out += [f"Account {account} was first polled {format_time(since)}: its lines are "
                f"reported over the {format_duration(window.end - since)} watched since, "
                f"not the {format_duration(window.end - window.start)} asked for.", ""]
    out += [f"{len(rows)} lines. Share of the watched window spent in each status "
            "(time the line was in the account).", "",
           "| account | phone | now | HEALTHY | WATCH | AT_RISK | CRITICAL | other "
           "| degradations | mean time to recover |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for history, report in rows:
        cells = [_share(_seconds(report, c), window.watched(history.account))
                 for c in _COLUMNS]
        mttr = report.mean_time_to_recover
        out.append(
            f"| {history.account} | {history.phone_number} | {history.current or 'removed'} | "
            + " | ".join(cells)
            + f" | {report.degradations} | "
            + (format_duration(timedelta(seconds=mttr)) if mttr is not None else "-") + " |")
    if not rows:
        out.append("| (no lines recorded in this window) | | | | | | | | | |")
    return "\n".join(out)


def to_csv(rows: list[tuple[LineHistory, LineReport]], window: Window) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["account", "line_id", "phone_number", "current_status",
                     *(f"seconds_{c.lower()}" for c in _COLUMNS), "changes", "degradations",
                     "recoveries", "mean_time_to_recover_seconds", "watched_from",
                     "watched_seconds"])
    for history, report in rows:
        mttr = report.mean_time_to_recover
        writer.writerow([history.account, history.line_id, history.phone_number,
                         history.current or "removed",
                         *(f"{_seconds(report, c):.0f}" for c in _COLUMNS), report.changes,
                         report.degradations, len(report.recoveries),
                         "" if mttr is None else f"{mttr:.0f}",
                         window.start_of(history.account).isoformat(),
                         f"{window.watched(history.account).total_seconds():.0f}"])
    return buffer.getvalue()


def to_json(rows: list[tuple[LineHistory, LineReport]], window: Window) -> dict[str, Any]:
    """``report --json``, shape documented in docs/cli.md."""
    return {
        "start": window.start.isoformat(), "end": window.end.isoformat(),
        "watched_from": {a: at.isoformat() for a, at in sorted(window.watched_from.items())},
        "lines": [{
            "account": history.account, "line_id": history.line_id,
            "phone_number": history.phone_number, "current_status": history.current,
            "watched_from": window.start_of(history.account).isoformat(),
            "watched_seconds": window.watched(history.account).total_seconds(),
            "seconds": {c: _seconds(report, c) for c in _COLUMNS},
            "changes": report.changes, "degradations": report.degradations,
            "recoveries": len(report.recoveries),
            "mean_time_to_recover_seconds": report.mean_time_to_recover,
        } for history, report in rows],
    }


def _seconds(report: LineReport, column: str) -> float:
    if column != "other":
        return report.seconds.get(column, 0.0)
    return sum((v for k, v in report.seconds.items() if not st.is_known(k)), 0.0)


def _share(seconds: float, window: timedelta) -> str:
    if seconds <= 0 or window <= timedelta(0):
        return "-"
    percent = 100 * seconds / window.total_seconds()
    return f"{percent:.1f} % ({format_duration(timedelta(seconds=seconds))})"
