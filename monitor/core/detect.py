"""Transition detection: the one code path from (previous state, observation) to events.

``detect_line`` is the whole state machine of a line. ``detect_account`` applies it to one
successful poll of an account, including removals. Both are pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from monitor.core.model import LineState, Observation, Transition, TransitionKind


def detect_line(
    previous: LineState | None,
    observation: Observation | None,
    *,
    account: str,
    now: datetime,
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
            since=now,
        )
        return state, _transition(None, state, TransitionKind.FIRST_SEEN, now)

    if unchanged(previous, observation):
        return previous, None
    status_changed = observation.status != previous.status

    state = replace(
        previous,
        phone_number=observation.phone_number,
        status=observation.status,
        doc_url=observation.doc_url,
        since=now if status_changed else previous.since,
        present=True,
    )
    if not previous.present:
        return state, _transition(previous, state, TransitionKind.RETURNED, now)
    if status_changed:
        return state, _transition(previous, state, TransitionKind.CHANGED, now)
    return state, None  # doc_url or phone number moved: remember it, nothing to announce


def unchanged(previous: LineState, observation: Observation) -> bool:
    """True when the observation tells nothing new about a present line."""
    return (
        previous.status == observation.status
        and previous.present
        and previous.doc_url == observation.doc_url
        and previous.phone_number == observation.phone_number
    )


def _transition(
    previous: LineState | None, state: LineState, kind: TransitionKind, now: datetime
) -> Transition:
    return Transition(
        account=state.account,
        line_id=state.line_id,
        phone_number=state.phone_number,
        kind=kind,
        from_status=previous.status if previous else None,
        to_status=state.status,
        doc_url=state.doc_url,
        at=now,
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
        after, transition = detect_line(before, observation, account=account, now=now)
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
