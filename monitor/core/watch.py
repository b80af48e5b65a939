"""The WATCH early warning applied to lines: each line's thresholds, and its changes. Pure.

A line is on WATCH when Linq reports it HEALTHY and its chats' assessment
(monitor/core/chats.py ``assess``) says so. Linq's own AT_RISK or CRITICAL always wins:
such a line stays what Linq says, and if Linq later reports it HEALTHY again while its
chats are still bad, it comes back as WATCH rather than HEALTHY.

A change HEALTHY <-> WATCH goes through the same ``detect_line`` and alert policy as a poll
or a webhook (``note_change`` for flapping, ``reconcile`` for routing, silences, reminders,
recoveries), recorded with source "chats". Debounce (``confirm_polls``) counts polls and
does not apply: the assessment's hysteresis is what keeps WATCH from flapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from monitor.core import status as st
from monitor.core.chats import DEFAULT_THRESHOLDS, WatchThresholds
from monitor.core.detect import detect_line
from monitor.core.event import EventPlan
from monitor.core.labels import selector_matches
from monitor.core.model import LineMeta, LineState, Observation
from monitor.core.policy import NO_META, AlertPolicy, note_change, reconcile

SOURCE = "chats"  # the transitions' and entries' source


@dataclass(frozen=True, slots=True)
class WatchOverride:
    """Thresholds for some lines: those of ``accounts`` (empty: any) carrying all
    ``labels``; ``values`` are the ``WatchThresholds`` fields it sets."""

    values: Mapping[str, Any]
    accounts: frozenset[str] = frozenset()
    labels: Mapping[str, str] = field(default_factory=dict)

    def selects(self, account: str, meta: LineMeta) -> bool:
        if self.accounts and account not in self.accounts:
            return False
        return selector_matches(self.labels, meta.labels)


@dataclass(frozen=True, slots=True)
class WatchRules:
    """The thresholds of every line: ``base``, then each matching override in order (a
    later one wins for a key both set)."""

    base: WatchThresholds = DEFAULT_THRESHOLDS
    overrides: tuple[WatchOverride, ...] = ()

    def for_line(self, account: str, meta: LineMeta) -> WatchThresholds:
        thresholds = self.base
        for override in self.overrides:
            if override.selects(account, meta):
                thresholds = replace(thresholds, **override.values)
        return thresholds


DEFAULT_RULES = WatchRules()


def effective_status(reported: str, *, watching: bool) -> str:
    """The line's status from what Linq reports and whether its chats are on WATCH:
    WATCH replaces HEALTHY only."""
    return st.WATCH if watching and reported == st.HEALTHY else reported


def overlay(observation: Observation, *, watching: bool) -> Observation:
    """A poll's observation as this monitor sees the line (``effective_status``)."""
    status = effective_status(observation.status, watching=watching)
    return observation if status == observation.status else observation._replace(status=status)


def plan_watch(
    previous: LineState,
    *,
    watching: bool,
    now: datetime,
    policy: AlertPolicy,
    meta: LineMeta = NO_META,
    silenced: bool = False,
) -> EventPlan:
    """What a new chat assessment does to a line: HEALTHY -> WATCH or WATCH -> HEALTHY with
    its notices, or nothing (the line is AT_RISK or worse, removed, or already there)."""
    if not previous.present or previous.status not in (st.HEALTHY, st.WATCH):
        return EventPlan(previous)
    target = st.WATCH if watching else st.HEALTHY
    if previous.status == target:
        return EventPlan(previous)
    observation = Observation(previous.line_id, previous.phone_number, target,
                              previous.doc_url)
    after, transition = detect_line(previous, observation, account=previous.account, now=now)
    assert after is not None and transition is not None
    # A poll's unconfirmed sighting (AT_RISK seen once of confirm_polls) still counts.
    after = replace(after, pending=previous.pending)
    notices, after = note_change(after, transition, policy, meta=meta, silenced=silenced)
    told, after = reconcile(after, policy, now=now, meta=meta, silenced=silenced,
                            transition=transition, source=SOURCE)
    return EventPlan(after, [transition], notices + told)
