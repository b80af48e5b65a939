"""What a ``phone_number.status_updated`` webhook does to a known line. Pure.

The reputation part goes through the same ``detect_line`` and ``route`` as a poll, so a
webhook produces the very transitions and notices the next poll would have; that poll then
sees nothing new. Ordering rules, since Linq does not promise delivery order:
- a reputation change that happened (``changed_at``) before the line's current status was
  observed is stale: it never rolls the line back;
- a service status older than the last one applied is ignored (see core/service.py);
- a ``changed_at`` in the future (clock skew) counts as the moment the event arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from monitor.core.detect import detect_line
from monitor.core.model import LineState, Notice, Observation, Transition
from monitor.core.route import ChannelRule, route
from monitor.core.service import detect_service, route_service

# Webhooks carry no doc_url: until the next poll brings the exact one, point at the guide.
GUIDE_URL = "https://docs.linqapp.com/guides/phone-numbers/phone-reputation"


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
    channels: list[ChannelRule],
    notify_recovery: bool,
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
            observation = Observation(state.line_id, state.phone_number, new_reputation,
                                      GUIDE_URL)
            after, transition = detect_line(state, observation, account=state.account, now=at)
            assert after is not None
            if transition is not None:
                routed, after = route(transition, after, channels,
                                      notify_recovery=notify_recovery)
                transitions.append(transition)
                notices += routed
            state = after
    if new_status is not None:
        after, transition = detect_service(state, new_status, changed_at=at)
        if after is state and new_status != state.service_status:
            stale = True
        if transition is not None:
            transitions.append(transition)
            notices += route_service(transition, channels, notify_recovery=notify_recovery)
        state = after
    return EventPlan(state, transitions, notices, stale)
