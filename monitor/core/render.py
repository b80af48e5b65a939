"""Alert text. Pure: every input, including the clock, comes in as a value."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from monitor.core import status as st
from monitor.core.model import Entry, Message, NoticeKind, Transition

_HEADLINE = {
    NoticeKind.DEGRADED: "degraded",
    NoticeKind.IMPROVED: "improving",
    NoticeKind.RECOVERED: "recovered",
    NoticeKind.UNKNOWN: "unknown status",
    NoticeKind.REMINDER: "still degraded",
    NoticeKind.FLAPPING: "flapping",
    NoticeKind.SETTLED: "settled",
}


def render_entries(entries: Sequence[Entry], *, now: datetime, limit: int = 20) -> Message:
    """One message for the entries due together on a channel (one entry: the full text)."""
    if len(entries) == 1:
        return render_entry(entries[0], now=now)
    shown = entries[:limit]
    lines = [summarize(entries), ""]
    for e in shown:
        lines.append(f"- {_who(e)}: {_change(e)}{_held(e)} — {e.doc_url or '(no doc_url)'}")
    if len(entries) > limit:
        lines.append(f"+{len(entries) - limit} more")
    accounts = sorted({e.account for e in entries})
    return Message(title=f"Linq reputation: {summarize(entries)} ({', '.join(accounts)})",
                   body="\n".join(lines))


def render_entry(e: Entry, *, now: datetime) -> Message:
    previous = e.from_status or "(new line)"
    title = (f"[{e.to_status}] {_who(e)} {_HEADLINE[e.kind]}: {previous} → {e.to_status} "
             f"({e.account})")
    lines = [
        f"Account: {e.account}",
        f"Line: {_who(e)} (id {e.line_id})",
        f"Status: {previous} → {e.to_status}",
        f"Changed at: {format_time(e.at if e.kind is not NoticeKind.REMINDER else now)}",
    ]
    if e.labels:
        lines.append("Labels: " + ", ".join(f"{k}={v}" for k, v in sorted(e.labels.items())))
    held = e.time_in_previous
    if held is not None and e.from_status is not None:
        lines.append(f"Time in {e.from_status}: {format_duration(held)}")
    if e.kind is NoticeKind.REMINDER and e.degraded_since is not None:
        degraded_for = format_duration(now - e.degraded_since)
        lines.append(f"Still {e.to_status}; degraded for {degraded_for}.")
    if e.sequence:
        lines.append("Recent changes: " + ", ".join(
            f"{s} at {a.strftime('%H:%M:%S')}" for a, s in e.sequence))
    if e.reason:
        lines.append(e.reason)
    if e.from_status is None and e.kind is NoticeKind.DEGRADED:
        lines.append("First time this monitor sees the line; it is already degraded.")
    if e.kind is NoticeKind.UNKNOWN:
        lines.append(f"'{e.to_status}' is not a status Linq documents; it is shown verbatim.")
    lines.append(f"Recommended action: {st.recommended_action(e.to_status)}")
    lines.append(f"Guide: {e.doc_url or '(the API sent no doc_url)'}")
    return Message(title=title, body="\n".join(lines))


def summarize(entries: Sequence[Entry]) -> str:
    """'6 lines degraded: 4 AT_RISK, 2 CRITICAL; 1 recovered'."""
    parts: list[str] = []
    worse = [e for e in entries if e.kind in (NoticeKind.DEGRADED, NoticeKind.UNKNOWN)]
    if worse:
        by_status = Counter(e.to_status for e in worse)
        detail = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items(),
                                                          key=lambda i: st.rank(i[0])))
        parts.append(f"{_lines(len(worse))} degraded: {detail}")
    for kind, word in ((NoticeKind.IMPROVED, "improving"), (NoticeKind.RECOVERED, "recovered"),
                       (NoticeKind.REMINDER, "still degraded"), (NoticeKind.FLAPPING, "flapping"),
                       (NoticeKind.SETTLED, "settled")):
        count = sum(1 for e in entries if e.kind is kind)
        if count:
            parts.append(f"{count} {word}")
    return "; ".join(parts)


def _lines(count: int) -> str:
    return f"{count} line" if count == 1 else f"{count} lines"


def _who(e: Entry) -> str:
    return f"{e.phone_number} ({e.name})" if e.name else e.phone_number


def _change(e: Entry) -> str:
    return f"{e.from_status or '(new)'} → {e.to_status} [{_HEADLINE[e.kind]}]"


def _held(e: Entry) -> str:
    held = e.time_in_previous
    if held is None or e.from_status is None:
        return ""
    return f" after {format_duration(held)} in {e.from_status}"


def render_test(channel: str, *, now: datetime) -> Message:
    return Message(
        title="Linq reputation monitor: test notification",
        body=(
            f"This is a test sent to channel '{channel}' at {format_time(now)}.\n"
            "If you can read it, alerts for degraded Linq lines will reach you here."
        ),
    )


def format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(span: timedelta) -> str:
    """'3d 4h', '2h 5m', '45s': the two largest units, enough for a human."""
    seconds = max(0, int(span.total_seconds()))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def describe(transition: Transition) -> str:
    """One line for logs and the ``history`` command."""
    previous = transition.from_status or "-"
    return f"{transition.phone_number} {previous} -> {transition.to_status} ({transition.kind})"


def render_trouble(problem: str, *, since: datetime, now: datetime, cleared: bool,
                   detail: str | None = None) -> Message:
    """The monitor's own trouble (polls failing, a channel giving up) and its end."""
    if cleared:
        return Message(
            title=f"[RESOLVED] Linq reputation monitor: {problem}",
            body=(f"Resolved at {format_time(now)} after {format_duration(now - since)}.\n"
                  "Line alerts flow normally again."),
        )
    lines = [f"Since {format_time(since)}: {problem}."]
    if detail:
        lines.append(f"Last error: {detail}")
    lines.append("Until this clears, changes of the affected lines may go unnoticed.")
    return Message(title=f"[MONITOR] Linq reputation monitor: {problem}", body="\n".join(lines))
