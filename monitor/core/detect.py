"""Transition detection: the one code path from (previous state, observation) to events.

``detect_line`` is the whole state machine of a line. ``detect_account`` applies it to one
successful poll of an account, including removals. Both are pure.

Debounce lives here because it decides what a change *is*: with ``confirm_polls`` N, a
worse status becomes the line's status only after N consecutive successful polls saw it
(the change is then dated from the first of them); ``recover_polls`` does the same for a
better one. A poll that sees the old status again drops the candidate. Failed polls never
reach this code, so they neither confirm nor reset a candidate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from monitor.core import status as st
from monitor.core.model import LineState, Observation, Pending, Transition, TransitionKind


@dataclass(frozen=True, slots=True)
class Debounce:
    confirm_polls: int = 1  # polls a worse status must hold before it counts
    recover_polls: int = 1  # polls a better status must hold before it counts

    def needed(self, before: str, after: str) -> int:
        return self.confirm_polls if st.rank(after) > st.rank(before) else self.recover_polls


NO_DEBOUNCE = Debounce()


def detect_line(
    previous: LineState | None,
    observation: Observation | None,
    *,
    account: str,
    now: datetime,
    debounce: Debounce = NO_DEBOUNCE,
) -> tuple[LineState | None, Transition | None]:
    """Return the line's next state and the transition it went through, if any.

    ``observation`` None means the line was absent from a successful poll. The returned
    state is ``previous`` itself (identity) when nothing about the line changed, so callers
    can skip writing it.
    """
    if observation is None:
        if previous is None or not previous.present:
            return previous, None
        removed = replace(previous, present=False)
        return removed, _transition(previous, removed, TransitionKind.REMOVED, now)

    if previous is None:
        state = LineState(
            account=account,
            line_id=observation.line_id,
            phone_number=observation.phone_number,
            status=observation.status,
            doc_url=observation.doc_url,
            line_type=observation.line_type,
            since=now,
            degraded_since=now if st.is_degraded(observation.status) else None,
        )
        return state, _transition(None, state, TransitionKind.FIRST_SEEN, now)

    if unchanged(previous, observation):
        return previous, None
    changed_at = now
    if observation.status != previous.status and previous.present:
        needed = debounce.needed(previous.status, observation.status)
        candidate = previous.pending
        if candidate is None or candidate.status != observation.status:
            candidate = Pending(observation.status, 0, now)
        candidate = Pending(candidate.status, candidate.count + 1, candidate.since)
        if candidate.count < needed:
            return replace(previous, pending=candidate), None
        changed_at = candidate.since
    status_changed = observation.status != previous.status

    state = replace(
        previous,
        phone_number=observation.phone_number,
        status=observation.status,
        doc_url=observation.doc_url,
        line_type=observation.line_type or previous.line_type,
        since=changed_at if status_changed else previous.since,
        present=True,
        pending=None,
    )
    if status_changed:
        state = replace(
            state,
            previous_status=previous.status,
            previous_since=previous.since,
            degraded_since=_episode_start(previous, observation.status, changed_at),
        )
    if not previous.present:
        return state, _transition(previous, state, TransitionKind.RETURNED, changed_at)
    if status_changed:
        return state, _transition(previous, state, TransitionKind.CHANGED, changed_at)
    return state, None  # doc_url, phone number or line type moved (or a candidate dropped)


def _episode_start(previous: LineState, status: str, at: datetime) -> datetime | None:
    # A degradation episode is AT_RISK or worse: WATCH (an early warning) neither starts
    # one nor belongs to one, so an AT_RISK channel's escalate_after and a reminder's
    # "degraded since" count from when Linq itself reported trouble.
    if not st.is_degraded(status):
        return None
    if not st.is_degraded(previous.status) or previous.degraded_since is None:
        return at
    return previous.degraded_since


def unchanged(previous: LineState, observation: Observation) -> bool:
    """True when the observation tells nothing new about a present line."""
    return (
        previous.status == observation.status
        and previous.present
        and previous.pending is None
        and previous.doc_url == observation.doc_url
        and previous.phone_number == observation.phone_number
        and observation.line_type in (None, previous.line_type)
    )


def _transition(
    previous: LineState | None, state: LineState, kind: TransitionKind, at: datetime
) -> Transition:
    return Transition(
        account=state.account,
        line_id=state.line_id,
        phone_number=state.phone_number,
        kind=kind,
        from_status=previous.status if previous else None,
        to_status=state.status,
        doc_url=state.doc_url,
        at=at,
        previous_since=previous.since if previous else None,
    )


@dataclass(frozen=True, slots=True)
class AccountDiff:
    """What one successful poll changed: states to write and transitions to record."""

    states: list[LineState]
    transitions: list[Transition]


def detect_account(
    previous: Mapping[str, LineState],
    observations: Iterable[Observation],
    *,
    account: str,
    now: datetime,
    protected: frozenset[str] = frozenset(),
    debounce: Debounce = NO_DEBOUNCE,
) -> AccountDiff:
    """Diff a whole poll against the known lines of ``account``.

    Lines known but absent from ``observations`` are removed, unless their id or phone
    number is in ``protected`` (items the parser had to skip keep their last known state).
    Observations must have unique line ids.
    """
    states: list[LineState] = []
    transitions: list[Transition] = []
    seen: set[str] = set()
    for observation in observations:
        seen.add(observation.line_id)
        before = previous.get(observation.line_id)
        if before is not None and unchanged(before, observation):
            continue  # the steady state of nearly every line: skip the call
        after, transition = detect_line(before, observation, account=account, now=now,
                                        debounce=debounce)
        if after is not before and after is not None:
            states.append(after)
        if transition is not None:
            transitions.append(transition)
    for line_id, before in previous.items():
        if line_id in seen or line_id in protected or before.phone_number in protected:
            continue
        after, transition = detect_line(before, None, account=account, now=now)
        if transition is not None and after is not None:
            states.append(after)
            transitions.append(transition)
    return AccountDiff(states=states, transitions=transitions)
