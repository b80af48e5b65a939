"""Service status (ACTIVE/FLAGGED), known only from webhooks: its changes. Pure.

FLAGGED means a service flag has degraded the line's ability to send. Linq's advice is to
page on-call and pause outbound, so the alert policy treats a flagged line as being at
``LEVEL``, a level ranked with the statuses Linq does not document: above CRITICAL, so
every channel that hears CRITICAL hears it (monitor/core/policy.py ``level``). Back to
ACTIVE, the line's level is its reputation again, and the channels hear an improvement or
a recovery. Any value other than ACTIVE is treated like FLAGGED: something to look at.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from urllib.parse import urldefrag

from monitor.core.model import LineState, Transition, TransitionKind

ACTIVE = "ACTIVE"
FLAGGED = "FLAGGED"
# The alert policy's level for a flagged line (what ``told`` records). Not "FLAGGED": the
# API has been seen to report FLAGGED as a reputation status too (an undocumented one),
# and the two must not be taken for each other.
LEVEL = "service:FLAGGED"

ACTION = {
    FLAGGED: ("Page on-call and pause outbound messaging on this line: a service flag has "
              "degraded its ability to send, and new messages may fail."),
    ACTIVE: "The line sends normally again; resume outbound gradually.",
}


def is_flagged(service_status: str | None) -> bool:
    return service_status is not None and service_status != ACTIVE


def flagged_doc_url(doc_url: str | None) -> str | None:
    """The guide link for a FLAGGED alert: the page of the line's doc_url without its
    section anchor. The doc_url is the one Linq gave for the reputation status (a FLAGGED
    line is often HEALTHY: ``#healthy``, "send normally"), and Linq documents no section
    for the service flag, so the page is all that is true."""
    return urldefrag(doc_url).url if doc_url else None


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
