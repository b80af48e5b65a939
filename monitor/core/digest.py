"""The daily digest: what it holds, which lines it speaks of, and its default text. Pure.

``monitor.service.digest.build_digest`` fills a ``Digest`` from the database; this module
only says what it means and how it reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from monitor.core import status as st
from monitor.core.labels import selector_matches
from monitor.core.model import LineMeta, LineRef, Message
from monitor.core.render import DEFAULT_LIMIT, format_duration, format_time


@dataclass(frozen=True, slots=True)
class DegradedLine:
    """A line not HEALTHY now, and since when."""

    account: str
    line_id: str
    phone_number: str
    status: str
    since: datetime
    doc_url: str | None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class DigestChange:
    """One recorded status change inside the digest's window."""

    at: datetime
    account: str
    line_id: str
    phone_number: str
    from_status: str | None
    to_status: str
    time_in_previous: timedelta | None
    doc_url: str | None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class LineTime:
    """Time one line spent degraded inside the window (lines never degraded are left out)."""

    account: str
    line_id: str
    phone_number: str
    at_risk: timedelta
    critical: timedelta
    other: timedelta  # statuses Linq does not document
    name: str | None = None

    @property
    def degraded(self) -> timedelta:
        return self.at_risk + self.critical + self.other


@dataclass(frozen=True, slots=True)
class PollHealth:
    account: str
    successes: int
    errors: int
    last_success: datetime | None
    last_error: str | None  # the newest stored error in the window (stored texts hold no secrets)


@dataclass(frozen=True, slots=True)
class Digest:
    """Everything one digest message says, over ``[start, end]``.

    ``changes`` are the newest ones, at most the builder's limit; ``change_count`` is how
    many there were in all.
    """

    start: datetime
    end: datetime
    degraded: tuple[DegradedLine, ...]
    changes: tuple[DigestChange, ...]
    change_count: int
    time_degraded: tuple[LineTime, ...]
    polls: tuple[PollHealth, ...]

    @property
    def summary(self) -> str:
        """'3 lines not HEALTHY (1 CRITICAL, 2 AT_RISK); 5 changes in 24h'."""
        window = _window(self.end - self.start)
        counts = Counter(line.status for line in self.degraded)
        if counts:
            per_status = ", ".join(f"{n} {status}" for status, n in
                                   sorted(counts.items(), key=lambda i: -st.rank(i[0])))
            lines = f"{_count(len(self.degraded), 'line')} not HEALTHY ({per_status})"
        else:
            lines = "all lines HEALTHY"
        errors = sum(p.errors for p in self.polls)
        polls = f"; {_count(errors, 'failed poll')}" if errors else ""
        return f"{lines}; {_count(self.change_count, 'change')} in {window}{polls}"


# The line's name and labels from the config.
LineMetaLookup = Callable[[LineRef], LineMeta | None]


_Named = TypeVar("_Named", DegradedLine, DigestChange)


@dataclass(frozen=True, slots=True)
class DigestLines:
    """Which lines one channel's digest speaks of, and by what name: the config's names and
    labels (``meta``; None: no line has any) against the channel's label selector
    (``labels``; None or empty: every line)."""

    meta: LineMetaLookup | None = None
    labels: Mapping[str, str] | None = None

    def covers(self, line: LineRef) -> bool:
        if not self.labels:
            return True
        found = self._meta(line)
        return found is not None and selector_matches(self.labels, found.labels)

    def name(self, line: LineRef) -> str | None:
        found = self._meta(line)
        return found.name if found else None

    def named(self, item: _Named) -> _Named:
        """``item`` with the line's name from the config."""
        return replace(item, name=self.name(item))

    def _meta(self, line: LineRef) -> LineMeta | None:
        return self.meta(line) if self.meta else None


def render_digest(digest: Digest, *, now: datetime, limit: int = DEFAULT_LIMIT) -> Message:
    """The digest's default text: four sections, each capped at ``limit`` items."""
    window = _window(digest.end - digest.start)
    out = [digest.summary]
    out += _section(f"Lines not HEALTHY now ({len(digest.degraded)}):",
                    [_degraded(line, now) for line in digest.degraded[:limit]],
                    more=len(digest.degraded) - limit)
    out += _section(f"Changes in the last {window} ({digest.change_count}):",
                    [_change(change) for change in digest.changes[:limit]],
                    more=digest.change_count - min(limit, len(digest.changes)))
    out += _section(f"Time degraded in the last {window}:",
                    [_time(spent) for spent in digest.time_degraded[:limit]],
                    more=len(digest.time_degraded) - limit)
    out += _section(f"Poll health over the last {window}:",
                    [_polls(health) for health in digest.polls], more=0,
                    empty="- no polls recorded")
    return Message(title=f"Line reputation digest: {digest.summary}", body="\n".join(out))


def _section(heading: str, items: list[str], *, more: int, empty: str = "- none") -> list[str]:
    return ["", heading, *(items or [empty]), *([f"+{more} more"] if more > 0 else [])]


def _degraded(line: DegradedLine, now: datetime) -> str:
    return (f"- {_who(line.phone_number, line.name)} {line.status} for "
            f"{format_duration(now - line.since)} (since {format_time(line.since)}), "
            f"account {line.account}\n  {line.doc_url or '(no doc_url)'}")


def _change(change: DigestChange) -> str:
    after = (f" after {format_duration(change.time_in_previous)} in {change.from_status}"
             if change.time_in_previous is not None and change.from_status else "")
    return (f"- {format_time(change.at)} {_who(change.phone_number, change.name)} "
            f"{change.from_status or '(new line)'} → {change.to_status}{after} "
            f"[{change.account}]\n  {change.doc_url or '(no doc_url)'}")


def _time(spent: LineTime) -> str:
    parts = [f"{label} {format_duration(span)}" for label, span in
             (("CRITICAL", spent.critical), ("AT_RISK", spent.at_risk), ("other", spent.other))
             if span > timedelta(0)]
    return f"- {_who(spent.phone_number, spent.name)} [{spent.account}]: " + ", ".join(parts)


def _polls(health: PollHealth) -> str:
    total = health.successes + health.errors
    rate = f" ({100 * health.successes / total:.1f} % ok)" if total else ""
    last = format_time(health.last_success) if health.last_success else "never"
    error = f", last error: {health.last_error}" if health.errors and health.last_error else ""
    return (f"- {health.account}: {health.successes} ok, {health.errors} failed{rate}, "
            f"last success {last}{error}")


def _who(phone_number: str, name: str | None) -> str:
    return f"{phone_number} ({name})" if name else phone_number


def _window(span: timedelta) -> str:
    """'24h' rather than '1d': a digest's window reads in hours up to two days."""
    hours, rest = divmod(int(span.total_seconds()), 3600)
    return f"{hours}h" if not rest and hours <= 48 else format_duration(span)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
