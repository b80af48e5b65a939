"""Time-in-status accounting over a window: the ``report`` command and retention summaries.

Pure: the caller passes each line's status at the window start and its changes inside
the window, oldest first, plus the window's bounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.core import status as st


@dataclass(frozen=True, slots=True)
class Change:
    at: datetime
    to_status: str | None  # None: the line left the account (not observed after this)


@dataclass(frozen=True, slots=True)
class LineReport:
    seconds: dict[str, float] = field(default_factory=dict)  # status -> time in it
    changes: int = 0  # status changes while in the account
    degradations: int = 0  # changes to a worse status (HEALTHY→AT_RISK, AT_RISK→CRITICAL…)
    recoveries: list[float] = field(default_factory=list)  # durations of closed episodes

    @property
    def mean_time_to_recover(self) -> float | None:
        return sum(self.recoveries) / len(self.recoveries) if self.recoveries else None


def account_line(
    initial: str | None, changes: Sequence[Change], *, start: datetime, end: datetime
) -> LineReport:
    """Account for one line between ``start`` and ``end``.

    ``initial`` is its status at ``start`` (None: not yet seen or not in the account).
    A degradation episode runs from reaching AT_RISK or worse to returning below it
    (HEALTHY, or the WATCH early warning, which is no degradation); one that began before
    ``start`` counts from ``start``.
    """
    seconds: dict[str, float] = {}
    status, since = initial, start
    degraded_since = start if initial is not None and st.is_degraded(initial) else None
    count = degradations = 0
    recoveries: list[float] = []
    for change in changes:
        if not start <= change.at <= end or change.to_status == status:
            continue
        if status is not None:
            seconds[status] = seconds.get(status, 0.0) + (change.at - since).total_seconds()
            if change.to_status is not None:
                count += 1  # a change of status; appearing and leaving are not
        if change.to_status is not None:
            before = st.rank(status) if status is not None else 0
            after = st.rank(change.to_status)
            degraded = st.is_degraded(change.to_status)
            if after > before and degraded:
                degradations += 1
            if degraded and degraded_since is None:
                degraded_since = change.at
            elif not degraded and degraded_since is not None:
                recoveries.append((change.at - degraded_since).total_seconds())
                degraded_since = None
        status, since = change.to_status, change.at
    if status is not None:
        seconds[status] = seconds.get(status, 0.0) + (end - since).total_seconds()
    return LineReport(seconds, count, degradations, recoveries)


def share(report: LineReport, status: str, window: timedelta) -> float:
    total = window.total_seconds()
    return report.seconds.get(status, 0.0) / total if total > 0 else 0.0
