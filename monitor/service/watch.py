"""What an account's poller knows of its lines' chats: the WATCH early warning's memory.

The chat summaries (monitor/core/chats.py) come from the chat sweep and chat webhook
events, for lines whose chats changed. For each line this keeps the latest assessment
(the hysteresis needs the previous one), the set of lines on WATCH, which polls and
webhooks then see as WATCH where Linq reports HEALTHY, and a phone-number index built on
the first summary (a fleet without chat health pays nothing for it).

Assessments are derived data, not stored: after a restart a line the database holds as
WATCH is taken to be on WATCH (so a poll does not clear it) until its chats are
summarised again (the chat sweep's first tick re-summarises every line with chats not
HEALTHY from the stored chats); a notice before that says so. The poller owns the lock
and the writes (service/poller.py ``apply_chat_health``); this holds no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from monitor.core import status as st
from monitor.core.chats import Assessment, ChatHealthSummary, assess
from monitor.core.model import LineMeta, LineState, Notice, NoticeKind, Observation
from monitor.core.watch import DEFAULT_RULES, SOURCE, WatchRules, overlay

CLEARED = "Its chats recovered: every WATCH signal is below its exit level."
# A line kept on WATCH from the database has no assessment of its own until its chats are
# summarised again (the chat sweep's first tick does so): say that rather than nothing.
RESTORED = ("on WATCH since before the monitor restarted; why, and its worst chats, come "
            "back with the next summary of its chats")


class ChatWatch:
    """``rules`` None: chat health is off, so a line stored as WATCH is not kept on WATCH
    (the next poll records WATCH -> HEALTHY and clears it)."""

    def __init__(self, rules: WatchRules | None) -> None:
        self._enabled = rules is not None
        self._rules = rules if rules is not None else DEFAULT_RULES
        self._assessments: dict[str, Assessment] = {}  # by line id
        self._watching: set[str] = set()
        self._by_phone: dict[str, str] | None = None

    def watching(self, line_id: str) -> bool:
        return line_id in self._watching

    def overlay(self, observations: list[Observation]) -> list[Observation]:
        """A poll's observations as this monitor sees the lines: WATCH for a line on WATCH
        that Linq reports HEALTHY. One set lookup a line (a poll of 100k lines)."""
        ids = self._watching
        if not ids:
            return observations
        return [o if o.line_id not in ids else overlay(o, watching=True)
                for o in observations]

    def seed(self, states: Iterable[LineState]) -> None:
        """Lines loaded from the database: one stored as WATCH stays on WATCH until its
        chats say otherwise."""
        if not self._enabled:
            return
        for state in states:
            if state.present and state.status == st.WATCH \
                    and state.line_id not in self._assessments:
                self.keep(state.line_id, Assessment(watch=True))

    def index(self, known: Mapping[str, LineState]) -> None:
        """Build the phone-number index once; ``follow`` keeps it current after."""
        if self._by_phone is None:
            self._by_phone = {s.phone_number: s.line_id for s in known.values() if s.present}

    def follow(self, state: LineState) -> None:
        if self._by_phone is not None and state.present:
            self._by_phone[state.phone_number] = state.line_id

    def line_of(self, summary: ChatHealthSummary) -> str | None:
        return None if self._by_phone is None else self._by_phone.get(summary.phone_number)

    def assess(self, state: LineState, summary: ChatHealthSummary, meta: LineMeta
               ) -> Assessment:
        """The line's chats judged with its thresholds and its previous assessment."""
        thresholds = self._rules.for_line(state.account, meta)
        return assess(summary, thresholds, self._assessments.get(state.line_id))

    def keep(self, line_id: str, assessment: Assessment) -> None:
        if assessment.watch:
            self._watching.add(line_id)
        else:
            self._watching.discard(line_id)
            # Only a WATCH line's summary is read again (its reasons and worst chats for
            # reminders); the next assessment needs the history alone. A sweep summarises
            # every line: at 100k lines the summaries would hold ~35 MB for nothing.
            assessment = replace(assessment, summary=None)
        self._assessments[line_id] = assessment

    def annotate(self, notice: Notice, pending: Mapping[str, Assessment]) -> Notice:
        """``notice`` with what the chats say: why a WATCH line is on WATCH and its worst
        chats; for a line leaving WATCH because its chats recovered, that reason."""
        entry = notice.entry
        if entry.to_status == st.WATCH:
            found = pending.get(entry.line_id) or self._assessments.get(entry.line_id)
            if found is None:
                return notice
            return replace(notice, entry=replace(entry,
                                                 watch_reasons=found.reasons or (RESTORED,),
                                                 chats=found.worst))
        if (entry.kind is NoticeKind.RECOVERED and entry.source == SOURCE
                and entry.reason is None):
            return replace(notice, entry=replace(entry, reason=CLEARED))
        return notice

    def clear(self) -> None:
        self._assessments.clear()
        self._watching.clear()
        self._by_phone = None
