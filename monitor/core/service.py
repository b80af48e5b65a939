"""Service status (ACTIVE/FLAGGED), known only from webhooks: its transitions and alerts. Pure.

FLAGGED means a service flag has degraded the line's ability to send. Linq's advice is to
page on-call and pause outbound, so it is alerted like CRITICAL: every channel (each one
hears CRITICAL), whatever its ``min_status``; back to ACTIVE is a recovery notice to the
same channels. Any other value is treated like FLAGGED: something to look at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from monitor.core import status as st
from monitor.core.model import LineState, Message, Notice, NoticeKind, Transition, TransitionKind
from monitor.core.render import format_duration, format_time
from monitor.core.route import ChannelRule

ACTIVE = "ACTIVE"
FLAGGED = "FLAGGED"

ACTION = {
    FLAGGED: ("Page on-call and pause outbound messaging on this line: a service flag has "
              "degraded its ability to send, and new messages may fail."),
    ACTIVE: "The line sends normally again; resume outbound gradually.",
}


def is_flagged(service_status: str | None) -> bool:
    return service_status is not None and service_status != ACTIVE


def detect_service(
    previous: LineState, new_status: str, *, changed_at: datetime
) -> tuple[LineState, Transition | None]:
    """The line's state after a webhook reported ``new_status``, and the change, if any.

    An event older than the last one applied changes nothing (delivery order is not
    guaranteed). The first report of ACTIVE is remembered quietly: it is the normal case.
    """
    if previous.service_changed_at is not None and changed_at < previous.service_changed_at:
        return previous, None
    state = replace(previous, service_status=new_status, service_changed_at=changed_at)
    if new_status == previous.service_status:
        return state, None
    if previous.service_status is None and new_status == ACTIVE:
        return state, None
    return state, Transition(
        account=previous.account,
        line_id=previous.line_id,
        phone_number=previous.phone_number,
        kind=TransitionKind.SERVICE,
        from_status=previous.service_status or ACTIVE,
        to_status=new_status,
        doc_url=previous.doc_url,
        at=changed_at,
        previous_since=previous.service_changed_at,
    )


def route_service(
    transition: Transition, channels: Sequence[ChannelRule], *, notify_recovery: bool
) -> list[Notice]:
    """FLAGGED reaches every channel that hears CRITICAL; ACTIVE is their recovery."""
    hears = [c for c in channels if c.min_rank <= st.rank(st.CRITICAL)]
    if is_flagged(transition.to_status):
        return [Notice(c.name, NoticeKind.DEGRADED, transition) for c in hears]
    if notify_recovery and is_flagged(transition.from_status):
        return [Notice(c.name, NoticeKind.RECOVERED, transition) for c in hears]
    return []


def render_service_notice(notice: Notice) -> Message:
    t = notice.transition
    headline = "flagged" if notice.kind is NoticeKind.DEGRADED else "service restored"
    title = (f"[{t.to_status}] {t.phone_number} {headline}: "
             f"{t.from_status} → {t.to_status} ({t.account})")
    lines = [
        f"Account: {t.account}",
        f"Line: {t.phone_number} (id {t.line_id})",
        f"Service status: {t.from_status} → {t.to_status}",
        f"Changed at: {format_time(t.at)}",
    ]
    if t.previous_since is not None:
        lines.append(f"Time in {t.from_status}: {format_duration(t.at - t.previous_since)}")
    lines.append(f"Recommended action: {ACTION.get(t.to_status, ACTION[FLAGGED])}")
    lines.append(f"Guide: {t.doc_url or '(no doc_url known for this line)'}")
    return Message(title=title, body="\n".join(lines))
