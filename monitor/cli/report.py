"""The ``report`` command: per line, time in each status, degradations, time to recover."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

from monitor.core import status as st
from monitor.core.render import format_duration, format_time
from monitor.core.report import LineReport, account_line
from monitor.store.queries import LineHistory

_COLUMNS = (*st.KNOWN_STATUSES, "other")


def build(histories: list[LineHistory], *, start: datetime, end: datetime
          ) -> list[tuple[LineHistory, LineReport]]:
    rows = [(h, account_line(h.initial, h.changes, start=start, end=end)) for h in histories]
    # Worst first: most time CRITICAL, then AT_RISK, then most degradations.
    rows.sort(key=lambda r: (-r[1].seconds.get(st.CRITICAL, 0), -r[1].seconds.get(st.AT_RISK, 0),
                             -r[1].degradations, r[0].account, r[0].phone_number))
    return rows


def to_markdown(rows: list[tuple[LineHistory, LineReport]], *, start: datetime, end: datetime
                ) -> str:
    window = end - start
    out = [f"# Line reputation report: {format_time(start)} to {format_time(end)}", "",
           f"{len(rows)} lines. Share of the window spent in each status "
           "(time the line was in the account).", "",
           "| account | phone | now | HEALTHY | AT_RISK | CRITICAL | other | degradations "
           "| mean time to recover |",
           "|---|---|---|---|---|---|---|---|---|"]
    for history, report in rows:
        cells = [_share(_seconds(report, c), window) for c in _COLUMNS]
        mttr = report.mean_time_to_recover
        out.append(
            f"| {history.account} | {history.phone_number} | {history.current or 'removed'} | "
            + " | ".join(cells)
            + f" | {report.degradations} | "
            + (format_duration(timedelta(seconds=mttr)) if mttr is not None else "-") + " |")
    if not rows:
        out.append("| (no lines recorded in this window) | | | | | | | | |")
    return "\n".join(out)


def to_csv(rows: list[tuple[LineHistory, LineReport]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["account", "line_id", "phone_number", "current_status",
                     *(f"seconds_{c.lower()}" for c in _COLUMNS), "changes", "degradations",
                     "recoveries", "mean_time_to_recover_seconds"])
    for history, report in rows:
        mttr = report.mean_time_to_recover
        writer.writerow([history.account, history.line_id, history.phone_number,
                         history.current or "removed",
                         *(f"{_seconds(report, c):.0f}" for c in _COLUMNS), report.changes,
                         report.degradations, len(report.recoveries),
                         "" if mttr is None else f"{mttr:.0f}"])
    return buffer.getvalue()


def _seconds(report: LineReport, column: str) -> float:
    if column != "other":
        return report.seconds.get(column, 0.0)
    return sum(v for k, v in report.seconds.items() if not st.is_known(k))


def _share(seconds: float, window: timedelta) -> str:
    if seconds <= 0:
        return "-"
    percent = 100 * seconds / window.total_seconds()
    return f"{percent:.1f} % ({format_duration(timedelta(seconds=seconds))})"
