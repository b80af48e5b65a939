"""What a ``phone_number.status_updated`` (or ``.released``) webhook does to a known line. Pure.

The reputation part goes through the same ``detect_line`` and alert policy as a poll
(``note_change`` for flapping, ``reconcile`` for who hears what), so a webhook produces
the very transitions and notices the next poll would have; that poll then sees nothing new.
The service status (ACTIVE/FLAGGED) is the line's ``level`` for the policy while flagged
(monitor/core/service.py). Ordering rules, since Linq does not promise delivery order:
- a reputation change that happened (``changed_at``) before the line's current status was
  observed is stale: it never rolls the line back;
- a service status older than the last one applied is ignored;
- a ``changed_at`` in the future (clock skew) counts as the moment the event arrived.
Debounce (``confirm_polls``) counts polls; a webhook is Linq's own report of a change, so
it applies at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import urldefrag

from monitor.core.detect import detect_line
from monitor.core.model import LineMeta, LineState, Notice, Observation, Transition
from monitor.core.policy import NO_META, AlertPolicy, note_change, reconcile
from monitor.core.service import detect_service

# Webhooks carry no doc_url: until the next poll brings the exact one, point at the page of
# the one the line had (doc_url is opaque: Linq moves its guides), or, for a line that never
# had one, at the guide where Linq's SDK documentation links it now.
GUIDE_URL = "https://docs.linqapp.com/channel/imessage/guides/phone-numbers/phone-reputation"


@dataclass(frozen=True, slots=True)
class EventPlan:
    state: LineState  # ``previous`` itself when nothing changed
    transitions: list[Transition] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    stale: bool = False  # the event was older than what is known

    @property
    def changed(self) -> bool:
        return bool(self.transitions)


def plan_status_update(
    previous: LineState,
    *,
    new_reputation: str | None,
    new_status: str | None,
    changed_at: datetime,
    received_at: datetime,
    now: datetime,
    policy: AlertPolicy,
    meta: LineMeta = NO_META,
    silenced: bool = False,
) -> EventPlan:
    at = min(changed_at, received_at)
    state = previous
    transitions: list[Transition] = []
    notices: list[Notice] = []
    stale = False
    if new_reputation is not None and new_reputation != state.status and state.present:
        if at < state.since:
            stale = True
        else:
            # The line's doc_url is the section of its old status (``#healthy`` for a line
            # going CRITICAL): until the next poll brings the new one, the page alone.
            doc_url = urldefrag(state.doc_url).url if state.doc_url else GUIDE_URL
            observation = Observation(state.line_id, state.phone_number, new_reputation,
                                      doc_url)
            # Any unconfirmed poll sighting is superseded by Linq's own report.
            after, transition = detect_line(replace(state, pending=None), observation,
                                            account=state.account, now=at)
            assert after is not None
            if transition is not None:
                transitions.append(transition)
                flapping, after = note_change(after, transition, policy, meta=meta,
                                              silenced=silenced)
                notices += flapping
            state = after
    if new_status is not None:
        after, transition = detect_service(state, new_status, changed_at=at)
        if after is state and new_status != state.service_status:
            stale = True
        if transition is not None:
            transitions.append(transition)
        state = after
    if transitions:
        # One event, one round of the policy: a channel hears where the line ended up
        # (FLAGGED and CRITICAL at once is one FLAGGED notice that also shows the new
        # reputation), linked to the reputation change when there is one, since that is
        # what an audit explains.
        told, state = reconcile(state, policy, now=now, meta=meta, silenced=silenced,
                                transition=transitions[0], source="webhook")
        notices += told
    return EventPlan(state, transitions, notices, stale)


def plan_release(previous: LineState, *, changed_at: datetime, received_at: datetime
                 ) -> EventPlan:
    """What ``phone_number.released`` does to a known line: it is removed, as a poll that no
    longer lists it would remove it (a removed line is frozen: no channel hears of it). A
    release older than the line's current status (a poll saw it since) is stale."""
    at = min(changed_at, received_at)
    if not previous.present:
        return EventPlan(previous)
    if at < previous.since:
        return EventPlan(previous, stale=True)
    after, transition = detect_line(previous, None, account=previous.account, now=at)
    assert after is not None and transition is not None
    return EventPlan(after, [transition])
