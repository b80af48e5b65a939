"""The invariant checker: what the database recorded against what the receiver got.

Used after fault runs (kill -9 cycles, database outages). It does not trust the daemon's
own bookkeeping: the channels each recorded change must reach are worked out here again
from the routing rule docs/alert-policy.md states, and every message the receiver got is matched to
the outbox rows it announces: a message (single or grouped) names, per line, the phone number
and the change (from → to); per channel and line, the announced changes are aligned in
order with the line's outbox rows.

- ``unrouted``: a (change, channel) the rule requires with no outbox row (a lost alert);
- ``spurious``: an outbox row the rule does not require (crying wolf), or a second row
  for the same change and channel;
- ``lost``: an outbox row whose message never arrived;
- ``duplicates``: messages that repeat what was already received (only a crash mid-send
  may cause one; a repeated grouped message repeats each of its lines, ``duplicate_entries``);
- ``strangers``: a message that matches no outbox row;
- ``out_of_order``: a line's messages to a channel that arrived in another order than
  their changes were recorded;
- ``unsettled``: outbox rows not (yet) recorded as delivered;
- ``troubles_open``: the monitor's own trouble announced on a channel and not (yet)
  cleared there;
- ``broken_chains``: a line's transition that does not start where its previous one ended
  (a change recorded twice, or one missing in between).

The monitor's own messages (rows without a line payload: its trouble and the clearing,
digests) are audited too: each must arrive exactly once, matched by its channel, title and
body. Their rule (docs/alert-policy.md, "The monitor's own trouble"): per trouble and channel, an
announcement and then one clearing, alternately, on every channel (the audit's channels
select every account); a repeated announcement or a clearing of nothing is ``spurious``.
``details`` names the rows and messages behind every non-zero count, for the failure
message.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.core import status as st
from monitor.store.schema import Line, Notification, TransitionRow
from tests.support.receiver import Received

_DETAILS_SHOWN = 30  # a failure message names this many items, then counts the rest


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
    troubles_open: int = 0
    own_delivered: int = 0  # the monitor's own messages (trouble, clearing, digest) received
    broken_chains: int = 0  # transitions not starting where the line's previous one ended
    details: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        """Nothing lost, nothing invented, in order; duplicates are reported, not judged."""
        return not (self.unrouted or self.spurious or self.lost or self.strangers
                    or self.out_of_order or self.unsettled or self.troubles_open
                    or self.broken_chains)

    def summary(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in vars(self).items() if k != "details")
        shown = list(self.details[:_DETAILS_SHOWN])
        if len(self.details) > _DETAILS_SHOWN:
            shown.append(f"... and {len(self.details) - _DETAILS_SHOWN} more")
        return "\n  ".join([counts, *shown])


def expected_deliveries(
    transitions: Iterable[TransitionRow], channels: Mapping[str, str], *, notify_recovery: bool
) -> set[tuple[int, str]]:
    """(transition id, channel) pairs the documented routing rule requires.

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
        all_rows = list(session.scalars(select(Notification).order_by(Notification.id)))
    rows = [r for r in all_rows if _is_line_notice(r)]
    own = [r for r in all_rows if not _is_line_notice(r)]
    details: list[str] = []
    required = expected_deliveries(transitions, channels, notify_recovery=notify_recovery)
    recorded = {(row.transition_id, row.channel) for row in rows}
    unrouted = sorted(required - recorded)
    by_id = {t.id: t for t in transitions}
    details += [f"unrouted: transition {tid} {_transition(by_id[tid])} to {channel}"
                for tid, channel in unrouted]
    # The rule calls for one row per (change, channel): a second one is as spurious as a
    # row for a change the channel must not hear (or for no recorded change at all).
    spurious: list[Notification] = []
    queued: set[tuple[int | None, str]] = set()
    for row in rows:
        pair = (row.transition_id, row.channel)
        if pair not in required or pair in queued:
            spurious.append(row)
        queued.add(pair)
    details += [f"spurious: {_row(r)}" for r in spurious]
    troubles = _trouble_rule(own, channels)
    details += [f"spurious: {_row(r)} (the trouble rule does not call for it)"
                for r in troubles.extra]
    details += [f"unrouted: {what}" for what in troubles.unheard]
    details += [f"trouble open: {what}" for what in troubles.open]
    broken = _broken_chains(transitions)
    details += [f"broken chain: transition {t.id} {_transition(t)}" for t in broken]

    expected_rows: dict[tuple[str, str], list[Notification]] = defaultdict(list)
    for row in rows:
        expected_rows[(row.channel, row.payload["phone_number"])].append(row)
    by_content: dict[tuple[str, str, str], list[Notification]] = defaultdict(list)
    for row in own:
        by_content[(row.channel, row.title.strip(), row.body.strip())].append(row)
    copies: Counter[int] = Counter()
    strangers = 0
    out_of_order = 0
    duplicate_messages = 0
    for message in messages:
        channel = message.path.lstrip("/")
        arrived: list[Notification] = []
        repeated = False
        entries = announced(message)
        if not entries:  # no line change in it: one of the monitor's own messages
            same = by_content.get((channel, message.title.strip(), message.message.strip()), [])
            fresh = [r for r in same if copies[r.id] == 0]
            if fresh:
                copies[fresh[0].id] += 1
            elif same:
                copies[same[-1].id] += 1
                duplicate_messages += 1
            else:
                strangers += 1
                details.append(f"stranger: message to {message.path}: {message.title!r}")
            continue
        for phone, before, after, when in entries:
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
                details.append(f"stranger: {phone} {before} → {after} at {when} in a message "
                               f"to {message.path}: {message.title!r}")
        # One message is one moment (a grouped one lists its lines worst first): per-line
        # order means every earlier row of the line arrived before it or with it.
        for row in arrived:
            key = (channel, row.payload["phone_number"])
            if any(copies[r.id] == 0 and r not in arrived
                   for r in expected_rows[key] if r.id < row.id):
                out_of_order += 1
                details.append(f"out of order: {_row(row)}")
        for row in arrived:
            copies[row.id] += 1
        duplicate_messages += repeated

    lost = [r for r in all_rows if not copies[r.id]]
    details += [f"lost: {_row(r)}" for r in lost]
    unsettled = [r for r in all_rows if r.state != "delivered"]
    details += [f"unsettled: {_row(r)}" for r in unsettled]
    return Audit(
        transitions=len(transitions),
        expected=len(required),
        delivered=sum(1 for row in rows if copies[row.id]),
        unrouted=len(unrouted) + len(troubles.unheard),
        spurious=len(spurious) + len(troubles.extra),
        lost=len(lost),
        duplicates=duplicate_messages,
        duplicate_entries=sum(n - 1 for n in copies.values() if n > 1),
        strangers=strangers,
        out_of_order=out_of_order,
        unsettled=len(unsettled),
        troubles_open=len(troubles.open),
        own_delivered=sum(1 for row in own if copies[row.id]),
        broken_chains=len(broken),
        details=tuple(details),
    )


def _is_line_notice(row: Notification) -> bool:
    """A line's notice carries its Entry (with a ``kind``); the monitor's own messages
    (trouble, digest) carry only their finished text."""
    return bool(row.payload and "kind" in row.payload)


def _trouble_rule(own: Sequence[Notification], channels: Mapping[str, str]) -> _TroubleRule:
    """Per trouble and channel: announced, cleared, announced... on every channel."""
    rule = _TroubleRule()
    opened: dict[tuple[str, str], bool] = {}
    heard: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in own:
        if row.kind not in ("trouble", "trouble_cleared") or not row.dedupe_key:
            continue
        episode = row.dedupe_key.rsplit(":", 2)[0]  # "<kind>:<subject>@<since>"
        key = (episode.split("@", 1)[0], row.channel)
        announcing = row.kind == "trouble"
        if opened.get(key, False) != announcing and row.channel in channels:
            opened[key] = announcing
            heard[(episode, row.kind)].add(row.channel)
        else:
            rule.extra.append(row)
    rule.unheard = [f"{kind} of {episode} to {channel}" for (episode, kind), told in heard.items()
                    for channel in channels if channel not in told]
    rule.open = [f"{key} on {channel}" for (key, channel), is_open in opened.items() if is_open]
    return rule


@dataclass
class _TroubleRule:
    extra: list[Notification] = field(default_factory=list)  # rows the rule does not call for
    unheard: list[str] = field(default_factory=list)  # announcements a channel never got
    open: list[str] = field(default_factory=list)  # troubles not cleared on a channel


def _broken_chains(transitions: Iterable[TransitionRow]) -> list[TransitionRow]:
    """Transitions that do not start where the line's previous one ended: a change recorded
    twice, or one missing in between. A line starts with one first sighting; it returns only
    after a removal, and changes or is removed only while present."""
    broken: list[TransitionRow] = []
    last: dict[tuple[str, str], TransitionRow] = {}
    for t in sorted(transitions, key=lambda row: row.id):
        before = last.get((t.account, t.line_id))
        if before is None:
            fits = t.kind == "first_seen"
        else:
            present = before.kind != "removed"
            fits = (t.from_status == before.to_status and t.kind != "first_seen"
                    and (t.kind == "returned") == (not present))
        if not fits:
            broken.append(t)
        last[(t.account, t.line_id)] = t
    return broken


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


def _row(row: Notification) -> str:
    return (f"notification {row.id} ({row.kind}, {row.state}, channel {row.channel}, "
            f"transition {row.transition_id}): {row.title!r}")


def _transition(t: TransitionRow) -> str:
    return f"({t.phone_number} {t.from_status} → {t.to_status}, {t.kind})"
