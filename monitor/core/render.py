"""Alert text. Pure: every input, including the clock, comes in as a value."""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.core import status as st
from monitor.core.model import Message, Notice, NoticeKind, Transition, TransitionKind

_HEADLINE = {
    NoticeKind.DEGRADED: "degraded",
    NoticeKind.IMPROVED: "improving",
    NoticeKind.RECOVERED: "recovered",
    NoticeKind.UNKNOWN: "unknown status",
}


def render_notice(notice: Notice) -> Message:
    """Title and plain-text body for one channel's notice."""
    t = notice.transition
    previous = t.from_status or "(new line)"
    title = (
        f"[{t.to_status}] {t.phone_number} {_HEADLINE[notice.kind]}: "
        f"{previous} → {t.to_status} ({t.account})"
    )
    lines = [
        f"Account: {t.account}",
        f"Line: {t.phone_number} (id {t.line_id})",
        f"Status: {previous} → {t.to_status}",
        f"Changed at: {format_time(t.at)}",
    ]
    if t.previous_since is not None and t.from_status is not None:
        lines.append(f"Time in {t.from_status}: {format_duration(t.at - t.previous_since)}")
    if t.kind is TransitionKind.FIRST_SEEN:
        lines.append("First time this monitor sees the line; it is already degraded.")
    elif t.kind is TransitionKind.RETURNED:
        lines.append("The line is back in the account after being absent.")
    if notice.kind is NoticeKind.UNKNOWN:
        lines.append(f"'{t.to_status}' is not a status Linq documents; it is shown verbatim.")
    lines.append(f"Recommended action: {st.recommended_action(t.to_status)}")
    lines.append(f"Guide: {t.doc_url or '(the API sent no doc_url)'}")
    return Message(title=title, body="\n".join(lines))


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
