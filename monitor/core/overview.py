"""What the status page shows: the overview's selection and a line's timeline. Pure.

The overview answers "what is wrong right now" over every line in memory (the gate's
``LineDirectory``): filter, worst first, one page of it, and the counts per status per
account. At 100k lines it must stay well under the 200 ms budget (bench/pages.py), so the
filters run as plain comparisons on the states and only the page's rows are sorted in full
(``heapq.nsmallest``), never the whole fleet.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.core import status as st
from monitor.core.model import LineState
from monitor.core.service import is_flagged

FLAGGED = "FLAGGED"
MIN_WIDTH = 0.4  # percent of the timeline  # the status filter's pseudo-status: Linq's service status


@dataclass(frozen=True, slots=True)
class Filters:
    """The overview's filters; empty strings mean "any"."""

    account: str = ""
    status: str = ""  # a reputation status, or FLAGGED
    label: str = ""  # key=value, or key alone
    text: str = ""  # a substring of the phone number, line id or name (case-insensitive)


@dataclass(frozen=True, slots=True)
class Selection:
    lines: list[LineState]  # this page, worst first
    matched: int  # lines that pass the filters
    counts: dict[str, Counter[str]]  # account -> status -> lines (all lines, unfiltered)
    flagged: Counter[str]  # account -> lines Linq reports FLAGGED


def sort_key(state: LineState) -> tuple[int, int, datetime, str]:
    """Worst first: highest rank, flagged before not, longest in that status, then phone."""
    return (-st.rank(state.status), 0 if is_flagged(state.service_status) else 1,
            state.since, state.phone_number)


def select(
    states: Iterable[LineState], filters: Filters, *, offset: int, limit: int,
    labels_for: Callable[[LineState], Mapping[str, str]],
    name_for: Callable[[LineState], str | None],
) -> Selection:
    """Filter ``states``, count them, and return lines ``offset``..``offset+limit``."""
    counts: dict[str, Counter[str]] = {}
    flagged: Counter[str] = Counter()
    matched: list[LineState] = []
    key, _, value = filters.label.partition("=")
    text = filters.text.strip().lower()
    for state in states:
        per = counts.get(state.account)
        if per is None:
            per = counts[state.account] = Counter()
        per[state.status] += 1
        if is_flagged(state.service_status):
            flagged[state.account] += 1
        if filters.account and state.account != filters.account:
            continue
        if filters.status:
            if filters.status == FLAGGED:
                if not is_flagged(state.service_status):
                    continue
            elif state.status != filters.status:
                continue
        if key:
            labels = labels_for(state)
            if key not in labels or (value and labels[key] != value):
                continue
        if text and text not in state.phone_number.lower() \
                and text not in state.line_id.lower() \
                and text not in (name_for(state) or "").lower():
            continue
        matched.append(state)
    page = heapq.nsmallest(offset + limit, matched, key=sort_key)[offset:]
    return Selection(lines=page, matched=len(matched), counts=counts, flagged=flagged)


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of the timeline: ``x`` and ``width`` in percent of the window."""

    status: str | None  # None: not watched (before the first record, or removed)
    start: datetime
    end: datetime
    x: float
    width: float


def timeline(initial: str | None, changes: Sequence[tuple[datetime, str | None]], *,
             start: datetime, end: datetime) -> list[Segment]:
    """The status over [start, end) as segments; ``changes`` are (at, status) oldest first,
    ``initial`` the status at ``start``."""
    span = (end - start).total_seconds() or 1.0
    segments: list[Segment] = []
    status, since = initial, start
    for at, to in [*changes, (end, None)]:
        at = min(max(at, start), end)
        if at > since:
            # At least MIN_WIDTH wide: a status held for minutes of a 90-day window is
            # still what the reader looks for (later segments are drawn over it).
            width = max(MIN_WIDTH, 100 * (at - since).total_seconds() / span)
            x = min(100 * (since - start).total_seconds() / span, 100 - width)
            segments.append(Segment(status, since, at, x, width))
        status, since = to, at
    return segments


def ticks(start: datetime, end: datetime, *, count: int = 6) -> list[tuple[float, datetime]]:
    """Evenly spaced (x percent, time) marks for the timeline's axis."""
    step: timedelta = (end - start) / count
    return [(100 * i / count, start + step * i) for i in range(count + 1)]
