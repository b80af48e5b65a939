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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter

from monitor.core import status as st
from monitor.core.model import LineState
from monitor.core.service import is_flagged

FLAGGED = "FLAGGED"  # the status filter's pseudo-status: Linq's service status
MIN_WIDTH = 0.4  # percent of the timeline
_ACCOUNT_STATUS = attrgetter("account", "status")
_SINCE_PHONE = attrgetter("since", "phone_number")


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


def sort_key(state: LineState) -> tuple[float, int, datetime, str]:
    """Worst first: highest rank, flagged before not, longest in that status, then phone."""
    return (-st.rank(state.status), 0 if is_flagged(state.service_status) else 1,
            state.since, state.phone_number)


def select(
    states: Iterable[LineState], filters: Filters, *, offset: int, limit: int,
    labels_for: Callable[[LineState], Mapping[str, str]],
    name_for: Callable[[LineState], str | None],
) -> Selection:
    """Filter ``states``, count them, and return lines ``offset``..``offset+limit``."""
    states = list(states)
    counts: dict[str, Counter[str]] = {}
    # Counted in C (Counter over attrgetter): the one pass every request pays in full.
    for (account, status), n in Counter(map(_ACCOUNT_STATUS, states)).items():
        counts.setdefault(account, Counter())[status] = n
    flagged = Counter(s.account for s in states
                      if s.service_status is not None and is_flagged(s.service_status))
    # Matched lines bucketed by status: worst first then means sorting only the buckets the
    # page reaches (a few thousand degraded lines), not the 100k healthy ones behind them.
    buckets: dict[str, list[LineState]] = {}
    for state in filter(_predicate(filters, labels_for, name_for), states) \
            if _filtering(filters) else states:
        bucket = buckets.get(state.status)
        if bucket is None:
            bucket = buckets[state.status] = []
        bucket.append(state)
    return Selection(lines=_page(buckets, offset=offset, limit=limit),
                     matched=sum(len(b) for b in buckets.values()), counts=counts,
                     flagged=flagged)


def _filtering(filters: Filters) -> bool:
    return bool(filters.account or filters.status or filters.label or filters.text.strip())


def _predicate(filters: Filters, labels_for: Callable[[LineState], Mapping[str, str]],
               name_for: Callable[[LineState], str | None]) -> Callable[[LineState], bool]:
    key, _, value = filters.label.partition("=")
    text = filters.text.strip().lower()

    def keep(state: LineState) -> bool:
        if filters.account and state.account != filters.account:
            return False
        if filters.status == FLAGGED:
            if not is_flagged(state.service_status):
                return False
        elif filters.status and state.status != filters.status:
            return False
        if key:
            labels = labels_for(state)
            if key not in labels or (value and labels[key] != value):
                return False
        return not text or text in state.phone_number.lower() \
            or text in state.line_id.lower() or text in (name_for(state) or "").lower()
    return keep


def _page(buckets: Mapping[str, list[LineState]], *, offset: int, limit: int
          ) -> list[LineState]:
    """Lines ``offset``..``offset+limit`` in ``sort_key`` order, from per-status buckets:
    by rank, flagged lines first within a rank, then by ``since`` and phone number (a key
    read in C, so even a deep page of 100k healthy lines sorts quickly)."""
    ranked: dict[float, list[LineState]] = {}
    for status, bucket in buckets.items():
        ranked.setdefault(st.rank(status), []).extend(bucket)
    need = offset + limit
    page: list[LineState] = []
    before = 0  # lines in the groups already passed
    for group in _groups([ranked[rank] for rank in sorted(ranked, reverse=True)],
                         skip=offset):
        if before + len(group) > offset:
            take = min(len(group), need - before)
            chosen = (heapq.nsmallest(take, group, key=_SINCE_PHONE) if take <= 500 < len(group)
                      else sorted(group, key=_SINCE_PHONE)[:take])
            page.extend(chosen[max(0, offset - before):])  # a heap only for the first pages
        before += len(group)
        if before >= need:
            break
    return page


def _groups(buckets: list[list[LineState]], *, skip: int) -> Iterator[list[LineState]]:
    """Each bucket as its flagged lines then the others; a bucket wholly before ``skip``
    is passed on unsplit (its order does not matter) and later ones only when asked for."""
    before = 0
    for bucket in buckets:
        if before + len(bucket) <= skip:
            yield bucket
        else:
            yield [s for s in bucket if is_flagged(s.service_status)]
            yield [s for s in bucket if not is_flagged(s.service_status)]
        before += len(bucket)


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
