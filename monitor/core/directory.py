"""Every known line, indexed by id and phone number, kept in step with the pollers' memory.

The gate API reads only this: a lookup is two dict reads, no database, so a sender can ask
before every message. The pollers feed it (``update``) exactly when their own memory moves
forward, i.e. after each commit, whether a poll or a webhook caused it.

``labels_for`` and ``flapping_for`` come from the alert policy (line labels from config,
flap detection; set by monitor/service/runtime.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from monitor.core import status as st
from monitor.core.model import LineState
from monitor.core.service import is_flagged

_MAX = "\U0010ffff"  # sorts after any line key: bisect past every line at a position


@dataclass(frozen=True, slots=True)
class AuditSummary:
    """What the gate shows of a line's latest audit."""

    state: str
    started_at: str
    severity: str | None
    primary_driver: str | None
    top_action: str | None


def advice(state: LineState) -> str:
    """What a sender should do: ``send``, ``slow_down`` (WATCH, AT_RISK) or ``pause``."""
    if is_flagged(state.service_status) or st.rank(state.status) >= st.rank(st.CRITICAL):
        return "pause"
    if st.rank(state.status) >= st.rank(st.WATCH):
        return "slow_down"
    return "send"


class LineDirectory:
    def __init__(
        self, *,
        labels_for: Callable[[LineState], dict[str, str]] = lambda state: {},
        flapping_for: Callable[[LineState], bool] = lambda state: False,
    ) -> None:
        self._lines: dict[tuple[str, str], LineState] = {}
        self._by_phone: dict[str, tuple[str, str]] = {}
        self._by_id: dict[str, tuple[str, str]] = {}
        self._audits: dict[str, AuditSummary] = {}
        # (account, phone number, line key) in order, for paging; rebuilt only after a line
        # came, went or changed its number (a status change keeps the order).
        self._ordered: list[tuple[str, str, tuple[str, str]]] | None = None
        self.labels_for = labels_for
        self.flapping_for = flapping_for

    def update(self, states: Iterable[LineState]) -> None:
        for state in states:
            key = (state.account, state.line_id)
            if not state.present:
                if self._lines.pop(key, None) is not None:
                    self._ordered = None
                if self._by_phone.get(state.phone_number) == key:
                    del self._by_phone[state.phone_number]
                if self._by_id.get(state.line_id) == key:
                    del self._by_id[state.line_id]
                continue
            before = self._lines.get(key)
            if before is None or before.phone_number != state.phone_number:
                self._ordered = None
            if before is not None and before.phone_number != state.phone_number \
                    and self._by_phone.get(before.phone_number) == key:
                del self._by_phone[before.phone_number]
            self._lines[key] = state
            self._by_phone[state.phone_number] = key
            self._by_id[state.line_id] = key

    def set_audit(self, phone_number: str, summary: AuditSummary) -> None:
        self._audits[phone_number] = summary

    def find(self, phone_or_id: str) -> LineState | None:
        key = self._by_phone.get(phone_or_id) or self._by_id.get(phone_or_id)
        return self._lines.get(key) if key is not None else None

    def all(self) -> Iterable[LineState]:
        return self._lines.values()

    def in_order(self, after: tuple[str, str] | None = None) -> Iterator[LineState]:
        """The lines by (account, phone number), starting after ``after`` if given: a page
        reads only as far as it needs (the order is sorted once per change of membership,
        not per request)."""
        if self._ordered is None:
            self._ordered = sorted((s.account, s.phone_number, k) for k, s in self._lines.items())
        ordered = self._ordered
        start = 0 if after is None else bisect.bisect_right(ordered, (*after, (_MAX, _MAX)))
        for index in range(start, len(ordered)):
            state = self._lines.get(ordered[index][2])
            if state is not None:
                yield state

    def __len__(self) -> int:
        return len(self._lines)

    def view(self, state: LineState) -> dict[str, Any]:
        """The JSON object the API returns for one line (see openapi.py, ``Line``)."""
        audit = self._audits.get(state.phone_number)
        return {
            "account": state.account,
            "line_id": state.line_id,
            "phone_number": state.phone_number,
            "status": state.status,
            "severity": st.rank(state.status),
            "since": state.since.isoformat(),
            "doc_url": state.doc_url,
            "line_type": state.line_type,
            "service_status": state.service_status,
            "flagged": is_flagged(state.service_status),
            "flapping": self.flapping_for(state),
            "labels": self.labels_for(state),
            "advice": advice(state),
            "last_audit": None if audit is None else {
                "state": audit.state, "started_at": audit.started_at,
                "severity": audit.severity, "primary_driver": audit.primary_driver,
                "top_action": audit.top_action,
            },
        }
