"""The invariant checker: what the database recorded against what the receiver got.

Used after fault runs (kill -9 cycles, database outages). It does not trust the daemon's
own bookkeeping: the channels each recorded change must reach are worked out here again
from the routing rule the README states, and every message the receiver got is matched to
the outbox row whose title and body it carries.

- ``unrouted``: a (change, channel) the rule requires with no outbox row (a lost alert);
- ``spurious``: an outbox row the rule does not require (crying wolf);
- ``lost``: an outbox row whose message never arrived;
- ``duplicates``: extra copies of a message (only a crash mid-send may cause one);
- ``strangers``: a message that matches no outbox row;
- ``out_of_order``: a line's messages to a channel that arrived in another order than
  their changes were recorded;
- ``unsettled``: outbox rows not (yet) recorded as delivered.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.core import status as st
from monitor.store.schema import Line, Notification, TransitionRow
from tests.support.receiver import Received


@dataclass(frozen=True)
class Audit:
    transitions: int
    expected: int
    delivered: int
    unrouted: int
    spurious: int
    lost: int
    duplicates: int
    strangers: int
    out_of_order: int
    unsettled: int

    @property
    def clean(self) -> bool:
        """Nothing lost, nothing invented, in order; duplicates are reported, not judged."""
        return not (self.unrouted or self.spurious or self.lost or self.strangers
                    or self.out_of_order or self.unsettled)

    def summary(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in vars(self).items())


def expected_deliveries(
    transitions: Iterable[TransitionRow], channels: Mapping[str, str], *, notify_recovery: bool
) -> set[tuple[int, str]]:
    """(transition id, channel) pairs the README's routing rule requires.

    ``channels`` maps a channel name to its ``min_status``. A channel hears every change
    while the line is at or above its ``min_status`` and one recovery when it drops below,
    if it heard the episode; removals and non-changes are silent.
    """
    told: dict[tuple[str, str], set[str]] = defaultdict(set)
    required: set[tuple[int, str]] = set()
    for t in sorted(transitions, key=lambda row: row.id):
        if t.kind == "removed" or t.from_status == t.to_status:
            continue
        heard = told[(t.account, t.line_id)]
        for channel, min_status in channels.items():
            if st.rank(t.to_status) >= st.rank(min_status):
                required.add((t.id, channel))
                heard.add(channel)
            elif channel in heard:
                heard.discard(channel)
                if notify_recovery:
                    required.add((t.id, channel))
    return required


def audit(
    sessions: sessionmaker[Session],
    messages: Iterable[Received],
    channels: Mapping[str, str],
    *,
    notify_recovery: bool = True,
) -> Audit:
    """Check the database against the messages (in arrival order; path ``/<channel>``)."""
    with sessions() as session:
        transitions = list(session.scalars(select(TransitionRow)))
        rows = list(session.scalars(select(Notification).order_by(Notification.id)))
    required = expected_deliveries(transitions, channels, notify_recovery=notify_recovery)
    recorded = {(row.transition_id, row.channel) for row in rows}
    by_content: dict[tuple[str, str, str], list[Notification]] = defaultdict(list)
    for row in rows:
        by_content[(row.channel, row.title, row.body)].append(row)

    copies: Counter[int] = Counter()
    strangers = 0
    arrival: dict[tuple[str, str], list[int]] = defaultdict(list)
    for message in messages:
        candidates = by_content.get((message.path.lstrip("/"), message.title, message.message))
        if not candidates:
            strangers += 1
            continue
        # Identical text for two rows would be two identical alerts; take the first unused.
        row = next((r for r in candidates if copies[r.id] == 0), candidates[0])
        if copies[row.id] == 0:
            arrival[(row.channel, row.line_id)].append(row.id)
        copies[row.id] += 1

    return Audit(
        transitions=len(transitions),
        expected=len(required),
        delivered=sum(1 for row in rows if copies[row.id]),
        unrouted=len(required - recorded),
        spurious=len(recorded - required),
        lost=sum(1 for row in rows if not copies[row.id]),
        duplicates=sum(n - 1 for n in copies.values() if n > 1),
        strangers=strangers,
        out_of_order=sum(1 for ids in arrival.values() if ids != sorted(ids)),
        unsettled=sum(1 for row in rows if row.state != "delivered"),
    )


def recorded_statuses(sessions: sessionmaker[Session], account: str = "main") -> dict[str, str]:
    """Phone number -> status of every line present in ``account``, as the database has it."""
    with sessions() as session:
        rows = session.execute(select(Line.phone_number, Line.status)
                               .where(Line.account == account, Line.present.is_(True))).all()
    return {phone: status for phone, status in rows}
