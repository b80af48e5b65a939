"""The invariant checker: what the database recorded against what the receiver got.

Used after fault runs (kill -9 cycles, database outages). It does not trust the daemon's
own bookkeeping: the channels each recorded change must reach are worked out here again
from the routing rule the README states, and every message the receiver got is matched to
the outbox rows it announces: a message (single or grouped) names, per line, the phone number
and the change (from → to); per channel and line, the announced changes are aligned in
order with the line's outbox rows.

- ``unrouted``: a (change, channel) the rule requires with no outbox row (a lost alert);
- ``spurious``: an outbox row the rule does not require (crying wolf);
- ``lost``: an outbox row whose message never arrived;
- ``duplicates``: messages that repeat what was already received (only a crash mid-send
  may cause one; a repeated grouped message repeats each of its lines, ``duplicate_entries``);
- ``strangers``: a message that matches no outbox row;
- ``out_of_order``: a line's messages to a channel that arrived in another order than
  their changes were recorded;
- ``unsettled``: outbox rows not (yet) recorded as delivered.
"""

from __future__ import annotations

import re
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
    duplicates: int  # messages that repeated something already received
    duplicate_entries: int  # line entries received more than once (a repeated message
    # that was grouped repeats all its lines)
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

    expected_rows: dict[tuple[str, str], list[Notification]] = defaultdict(list)
    for row in rows:
        if row.payload and "kind" in row.payload:
            expected_rows[(row.channel, row.payload["phone_number"])].append(row)
    copies: Counter[int] = Counter()
    strangers = 0
    out_of_order = 0
    duplicate_messages = 0
    for message in messages:
        channel = message.path.lstrip("/")
        arrived: list[Notification] = []
        repeated = False
        for phone, before, after, when in announced(message):
            line_rows = expected_rows.get((channel, phone), [])
            matching = [r for r in line_rows if _announces(r, before, after, when)]
            fresh = [r for r in matching if copies[r.id] == 0 and r not in arrived]
            if fresh:
                arrived.append(fresh[0])
            elif matching:
                copies[matching[-1].id] += 1  # a copy of something already received
                repeated = True
            else:
                strangers += 1
        # One message is one moment (a grouped one lists its lines worst first): per-line
        # order means every earlier row of the line arrived before it or with it.
        for row in arrived:
            key = (channel, row.payload["phone_number"])
            if any(copies[r.id] == 0 and r not in arrived
                   for r in expected_rows[key] if r.id < row.id):
                out_of_order += 1
        for row in arrived:
            copies[row.id] += 1
        duplicate_messages += repeated

    return Audit(
        transitions=len(transitions),
        expected=len(required),
        delivered=sum(1 for row in rows if copies[row.id]),
        unrouted=len(required - recorded),
        spurious=len(recorded - required),
        lost=sum(1 for row in rows if not copies[row.id]),
        duplicates=duplicate_messages,
        duplicate_entries=sum(n - 1 for n in copies.values() if n > 1),
        strangers=strangers,
        out_of_order=out_of_order,
        unsettled=sum(1 for row in rows if row.state != "delivered"),
    )


_CHANGE = re.compile(r"(\+\d+).*?(\(new line\)|[A-Z_]+) → ([A-Z_]+)")
_WHEN = re.compile(r"(\d\d:\d\d:\d\d) UTC")


def announced(message: Received) -> list[tuple[str, str | None, str, str | None]]:
    """(phone, from, to, HH:MM:SS of the change) of each line a message speaks of: the
    entries of a grouped message, or the title and "Changed at" of a single one."""
    entries = [line for line in message.message.splitlines() if line.startswith("- +")]
    found = []
    for text in entries or [message.title]:
        match = _CHANGE.search(text)
        if not match:
            continue
        when = _WHEN.search(text if entries else message.message)
        before = None if match.group(2) == "(new line)" else match.group(2)
        found.append((match.group(1), before, match.group(3), when.group(1) if when else None))
    return found


def _announces(row: Notification, before: str | None, after: str, when: str | None) -> bool:
    payload = row.payload or {}
    at = str(payload.get("at", ""))
    return bool(payload.get("from_status") == before and payload.get("to_status") == after
                and (when is None or at[11:19] == when))


def recorded_statuses(sessions: sessionmaker[Session], account: str = "main") -> dict[str, str]:
    """Phone number -> status of every line present in ``account``, as the database has it."""
    with sessions() as session:
        rows = session.execute(select(Line.phone_number, Line.status)
                               .where(Line.account == account, Line.present.is_(True))).all()
    return {phone: status for phone, status in rows}
