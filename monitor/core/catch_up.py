"""One channel catching up with a line: the decisions inside ``policy.reconcile``. Pure.

``reconcile`` describes the line once, as a ``Round``, and asks ``catch_up`` about each
channel in turn. A channel is in one of four cases, each decided by one step:

- the line no longer engages it (``_recovery``): one recovery, if it heard the episode;
- it heard the line's current level (``_reminder``): a reminder when one is due;
- the line is silenced (``_silenced_change``): the new level, recorded as silenced;
- it is behind (``_announcement``): the new level, once any ``escalate_after`` has passed.

The answer, an ``Outcome``, names the notice (built by the policy) and what the channel
has heard afterwards; nothing here builds a message or changes a state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.core import service as sv
from monitor.core import status as st
from monitor.core.labels import selector_matches
from monitor.core.model import LineMeta, LineState, NoticeKind, Told, Transition, TransitionKind
from monitor.core.render import format_duration as _span


@dataclass(frozen=True, slots=True)
class ChannelRule:
    """The part of a channel's config that decides whether and when it hears of a line."""

    name: str
    min_rank: float
    accounts: frozenset[str] = frozenset()  # empty: every account
    labels: Mapping[str, str] = field(default_factory=dict)  # all must match
    repeat_interval: timedelta | None = None
    escalate_after: timedelta | None = None

    def selects(self, account: str, meta: LineMeta) -> bool:
        if self.accounts and account not in self.accounts:
            return False
        return selector_matches(self.labels, meta.labels)

    def engaged_since(self, state: LineState) -> datetime:
        """When the line reached this channel's ``min_status`` in the current episode."""
        if self.min_rank <= st.rank(st.AT_RISK) and state.degraded_since is not None:
            return state.degraded_since
        return state.since


@dataclass(frozen=True, slots=True)
class Round:
    """One call of ``reconcile``: the line and everything its channels are judged against."""

    state: LineState
    meta: LineMeta
    now: datetime
    silenced: bool
    transition: Transition | None
    level: str  # ``policy.level(state)``: what channels hear and ``told`` records


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one channel gets in a round, and what it has heard afterwards.

    ``kind``: the notice it gets (None: none), with its ``reason``; ``quiet``: recorded as
    silenced, not sent. ``forget`` drops what the channel had heard (the episode is over
    for it); ``told``, when set, is then recorded as what it has heard.
    """

    kind: NoticeKind | None = None
    reason: str | None = None
    quiet: bool = False
    forget: bool = False
    told: Told | None = None


NOTHING = Outcome()  # the channel is up to date, or must wait: nothing sent, nothing noted


def catch_up(line: Round, rule: ChannelRule, heard: Told | None, *,
             notify_recovery: bool) -> Outcome:
    """What the channel of ``rule``, which last heard ``heard``, gets in this round."""
    if not _engages(line, rule):
        return _recovery(line, heard, notify_recovery=notify_recovery)
    if heard is not None and not heard.silenced and heard.status == line.level:
        return _reminder(line, rule, heard)
    if line.silenced:
        return _silenced_change(line, heard)
    return _announcement(line, rule, heard)


def _engages(line: Round, rule: ChannelRule) -> bool:
    """Whether the channel hears of the line now: at or above its ``min_status``, selected."""
    return st.rank(line.level) >= rule.min_rank and rule.selects(line.state.account, line.meta)


def _recovery(line: Round, heard: Told | None, *, notify_recovery: bool) -> Outcome:
    """A channel the line no longer engages: one recovery if it heard the episode (held
    while the line is silenced), and it forgets the episode."""
    if heard is None:
        return NOTHING
    if heard.recovery_owed:
        if line.silenced:
            return NOTHING  # the recovery it is owed waits for the silence to end
        return Outcome(NoticeKind.RECOVERED, forget=True,
                       reason="It recovered during a silence on this line, which has ended.")
    if heard.silenced or not notify_recovery:
        # Silenced: it never heard of the episode, so it hears nothing of its end.
        return Outcome(forget=True)
    if not line.silenced:
        return Outcome(NoticeKind.RECOVERED, forget=True)
    # Recorded as silenced; said once the silence ends.
    owed = Told(line.level, line.now, silenced=True, recovery_owed=True)
    return Outcome(NoticeKind.RECOVERED, quiet=True, forget=True, told=owed)


def _reminder(line: Round, rule: ChannelRule, heard: Told) -> Outcome:
    """A channel that heard the current level: a reminder once ``repeat_interval`` has
    passed since, unless the line is silenced."""
    due = rule.repeat_interval is not None and line.now - heard.at >= rule.repeat_interval
    if not due or line.silenced:
        return NOTHING
    # About the change; rendered at send.
    return Outcome(NoticeKind.REMINDER, told=Told(line.level, line.now))


def _silenced_change(line: Round, heard: Told | None) -> Outcome:
    """A silenced line's new level: recorded as silenced, once per level."""
    if heard is not None and heard.status == line.level:
        return NOTHING  # already recorded as silenced
    return Outcome(_change_kind(line, heard), quiet=True,
                   told=Told(line.level, line.now, silenced=True))


def _announcement(line: Round, rule: ChannelRule, heard: Told | None) -> Outcome:
    """A channel behind the line hears its level, unless it still waits for
    ``escalate_after``."""
    if (heard is None or heard.silenced) and _escalation_pending(line, rule):
        return NOTHING  # the tick comes back once the line has been engaged long enough
    return Outcome(_change_kind(line, heard), reason=_reason(line, rule, heard),
                   told=Told(line.level, line.now))


def _escalation_pending(line: Round, rule: ChannelRule) -> bool:
    """Whether the line has been engaged for less than the channel's ``escalate_after``."""
    return rule.escalate_after is not None and (
        line.now - rule.engaged_since(line.state) < rule.escalate_after)


def _reason(line: Round, rule: ChannelRule, heard: Told | None) -> str | None:
    """Why an announcement comes now, when it is not simply that the line changed."""
    if heard is not None and heard.silenced:
        return "A silence on this line ended while it was still degraded."
    if heard is None and rule.escalate_after is not None:
        waited = line.now - rule.engaged_since(line.state)
        return (f"Escalated: at or above {st.status_for_rank(rule.min_rank)} "
                f"for {_span(waited)}.")
    if line.transition is not None and line.transition.kind is TransitionKind.RETURNED:
        return "The line is back in the account after being absent."
    return None


def _change_kind(line: Round, heard: Told | None) -> NoticeKind:
    """Whether the line's level is news of a degradation, an improvement or an unknown
    status, compared with what the channel heard (or the line's previous status)."""
    if line.level == sv.LEVEL:
        return NoticeKind.DEGRADED
    if not st.is_known(line.level):
        return NoticeKind.UNKNOWN
    before = heard.status if heard is not None else line.state.previous_status
    if before is not None and st.rank(line.level) < st.rank(before):
        return NoticeKind.IMPROVED
    return NoticeKind.DEGRADED
