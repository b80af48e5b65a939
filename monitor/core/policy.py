"""Alert policy: who hears what about a line, and when. Pure: state, config and ``now`` in.

The policy is level-based. For every channel a line keeps ``told``: what that channel last
heard about the current episode. ``reconcile`` compares it with the line as it is now and
the channel's rules, and emits exactly the notices that close the gap:

- an engaged channel (line at or above its ``min_status``, selected by its ``accounts``
  and ``labels``) that has not heard the current status hears it: degraded, improving or
  unknown; with ``escalate_after``, only once the line has been engaged that long;
- a channel that heard about an episode hears one recovery when the line drops below its
  ``min_status`` (and nothing if it never heard, e.g. before escalation);
- with ``repeat_interval``, an engaged channel is reminded when it last heard that long ago;
- a silenced line's changes are recorded as silenced (not sent); when the silence ends
  and the line is still degraded, the channel hears it once; a line that went and came
  back during the silence produces nothing; a channel that heard a degradation before the
  silence hears of a recovery during it once the silence ends;
- a flapping line produces one "flapping" notice, then nothing per change until it has
  been stable for ``flap_window``, then one "settled" notice.

The poll path calls it for lines that changed; the daemon's policy tick calls it for the
lines that have something time-based pending. Because ``told`` is stored with the line and
every decision is recomputed from it and ``now``, a restart repeats and skips nothing.

Each channel's part of ``reconcile`` (which of these cases it is in, what it hears) is
decided in monitor/core/catch_up.py; this module builds the notices and the new state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from monitor.core import service as sv
from monitor.core import status as st

# ChannelRule is part of the policy's interface; catch_up, which reads it, defines it.
from monitor.core.catch_up import ChannelRule as ChannelRule
from monitor.core.catch_up import Round, catch_up
from monitor.core.model import (
    Entry,
    Flap,
    LineMeta,
    LineState,
    Notice,
    NoticeKind,
    Told,
    Transition,
    TransitionKind,
)

NO_META = LineMeta()


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    channels: tuple[ChannelRule, ...] = ()
    notify_recovery: bool = True
    flap_changes: int = 0  # more changes than this within flap_window: flapping (0: off)
    flap_window: timedelta = timedelta(hours=1)


def reconcile(
    state: LineState,
    policy: AlertPolicy,
    *,
    now: datetime,
    meta: LineMeta = NO_META,
    silenced: bool = False,
    transition: Transition | None = None,
    source: str = "poll",
) -> tuple[list[Notice], LineState]:
    """The notices that bring every channel up to date with ``state``, and the new state.

    Notices come in the order of ``policy.channels``. The state returned is ``state`` itself
    when no channel's ``told`` changed, so callers can skip writing it.
    """
    if not state.present or state.flapping:
        return [], state  # a removed line is frozen; a flapping one waits to settle
    line = Round(state, meta, now=now, silenced=silenced, transition=transition,
                 level=level(state))
    told = dict(state.told)
    notices: list[Notice] = []
    for rule in policy.channels:
        outcome = catch_up(line, rule, told.get(rule.name),
                           notify_recovery=policy.notify_recovery)
        if outcome.kind is not None:
            notices.append(_notice(line, rule, outcome.kind, reason=outcome.reason,
                                   quiet=outcome.quiet, source=source))
        if outcome.forget:
            del told[rule.name]
        if outcome.told is not None:
            told[rule.name] = outcome.told
    if told == state.told:
        return notices, state
    return notices, replace(state, told=told)


def _notice(line: Round, rule: ChannelRule, kind: NoticeKind, *, reason: str | None,
            quiet: bool, source: str) -> Notice:
    """The channel's notice of ``kind``, dated from the change (``quiet``: recorded as
    silenced, not sent)."""
    state, transition = line.state, line.transition
    service = _service_shown(line, rule)
    entry = _entry(state, kind, line.meta, at=_changed_at(state, transition),
                   reason=reason, source=source,
                   service=service, degraded_since=rule.engaged_since(state))
    if service == sv.FLAGGED:
        entry = replace(entry, doc_url=sv.flagged_doc_url(state.doc_url))
    if kind is NoticeKind.RECOVERED:
        entry = replace(entry, below=st.status_for_rank(rule.min_rank))
    if transition is not None and transition.kind is TransitionKind.SERVICE:
        # Only the service status changed: no reputation change to show.
        entry = replace(entry, from_status=None, previous_since=None)
    return Notice(rule.name, entry, transition, silenced=quiet)


def _service_shown(line: Round, rule: ChannelRule) -> str | None:
    """The service status a notice shows: FLAGGED while flagged; to a channel that heard
    the flag before this round, the status that replaced it; otherwise none."""
    if line.level == sv.LEVEL:
        return sv.FLAGGED
    heard = line.state.told.get(rule.name)
    if heard is not None and heard.status == sv.LEVEL:
        return line.state.service_status or sv.ACTIVE
    return None


def note_change(
    state: LineState,
    transition: Transition,
    policy: AlertPolicy,
    *,
    meta: LineMeta = NO_META,
    silenced: bool = False,
) -> tuple[list[Notice], LineState]:
    """Count a status change toward flapping; the one "flapping" notice when it tips over."""
    if policy.flap_changes <= 0 or transition.from_status is None or not transition.status_changed:
        return [], state  # a first sighting is not a change
    horizon = transition.at - policy.flap_window
    before = state.flap or Flap()
    changes = tuple(c for c in before.changes if c[0] > horizon)
    changes += ((transition.at, transition.to_status),)
    if before.flapping or len(changes) <= policy.flap_changes:
        return [], replace(state, flap=replace(before, changes=changes))
    statuses = [transition.from_status or st.HEALTHY] + [s for _, s in changes]
    worst = max(st.rank(s) for s in statuses)
    rules = [r for r in policy.channels
             if worst >= r.min_rank and r.selects(state.account, meta)]
    flap = Flap(changes=changes, flapping=True, channels=frozenset(r.name for r in rules))
    state = replace(state, flap=flap)
    # The message itself lists the changes and says how long alerts pause (render.py).
    entry = _entry(state, NoticeKind.FLAPPING, meta, at=transition.at, sequence=changes)
    return [Notice(r.name, entry, transition, silenced=silenced) for r in rules], state


def settle(
    state: LineState,
    policy: AlertPolicy,
    *,
    now: datetime,
    meta: LineMeta = NO_META,
    silenced: bool = False,
) -> tuple[list[Notice], LineState]:
    """End flapping once the line has been stable for ``flap_window``: one notice saying where
    it settled, to the channels told it was flapping; ``told`` then matches the present."""
    flap = state.flap
    if flap is None:
        return [], state
    last_change = flap.changes[-1][0] if flap.changes else state.since
    if now - last_change < policy.flap_window:
        return [], state
    if not flap.flapping:
        return [], replace(state, flap=None)  # nothing recent left to count
    settled = replace(state, flap=None)
    entry = _entry(settled, NoticeKind.SETTLED, meta, at=settled.since, sequence=flap.changes)
    notices = [Notice(name, entry, silenced=silenced) for name in sorted(flap.channels)]
    told = dict(state.told)
    rank = st.rank(level(state))
    for rule in policy.channels:
        engaged = rank >= rule.min_rank and rule.selects(state.account, meta)
        if engaged and rule.name in flap.channels:
            told[rule.name] = Told(level(state), now, silenced=silenced)
        elif not engaged:
            told.pop(rule.name, None)
    return notices, replace(settled, told=told)


def needs_review(state: LineState, policy: AlertPolicy) -> bool:
    """Whether time alone can make this line produce a notice (the policy tick's work list)."""
    if not state.present:
        return False
    if state.flap is not None:
        return True
    if state.told:
        return True
    return st.rank(level(state)) >= min((r.min_rank for r in policy.channels), default=99)


def level(state: LineState) -> str:
    """What the policy compares and channels hear: ``service.LEVEL`` while Linq's service
    status is FLAGGED (ranked above CRITICAL: alerted like it), otherwise the reputation
    status (which may itself be an undocumented string such as "FLAGGED")."""
    return sv.LEVEL if sv.is_flagged(state.service_status) else state.status


def _changed_at(state: LineState, transition: Transition | None) -> datetime:
    """When the change a notice announces happened: a service change has its own time."""
    if transition is not None and transition.kind is TransitionKind.SERVICE:
        return transition.at
    return state.since


def _entry(
    state: LineState,
    kind: NoticeKind,
    meta: LineMeta,
    *,
    at: datetime,
    reason: str | None = None,
    degraded_since: datetime | None = None,
    sequence: Sequence[tuple[datetime, str]] = (),
    source: str = "poll",
    service: str | None = None,
) -> Entry:
    return Entry(
        kind=kind,
        account=state.account,
        line_id=state.line_id,
        phone_number=state.phone_number,
        from_status=state.previous_status,
        to_status=state.status,
        at=at,
        previous_since=state.previous_since,
        doc_url=state.doc_url,
        name=meta.name,
        labels=dict(meta.labels),
        reason=reason,
        degraded_since=degraded_since or state.degraded_since,
        sequence=tuple(sequence),
        source=source,
        service=service,
    )
