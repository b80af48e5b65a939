"""Simulated reputation audits as linq-python 0.65.0 documents them: one per line at a time
(a start while one runs gets 202 with the running audit's id), a cooldown after it ends (429
with ``Retry-After``), a scripted delay before the report is ready, and every audit readable
by id for 24 hours (then 404, as is another line's id). Thread-safe; the app calls
``start``/``read``."""

from __future__ import annotations

import copy
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from monitor.simulator.wire import new_trace_id, render_error

KEEP = 24 * 3600.0  # seconds an audit_id stays readable

DEFAULT_REPORT: dict[str, Any] = {
    "severity": "CRITICAL",
    "primary_driver": "low_engagement",
    "drivers": [
        {"key": "low_engagement", "metric": "reply rate 1.8% over 7 days",
         "summary": "Few recipients reply to messages from this line."},
        {"key": "new_conversation_rate", "metric": "240 new conversations yesterday",
         "summary": "Many brand-new conversations in one day."},
    ],
    "action_items": [
        {"title": "Pause cold outreach on this line", "priority": 1, "expected_impact": "high",
         "detail": "Send only to recipients who replied in the last 30 days."},
        {"title": "Spread new conversations over more lines", "priority": 2,
         "expected_impact": "medium", "detail": "Keep under 50 new conversations a day."},
        {"title": "Review opt-out handling", "priority": 3, "expected_impact": "low",
         "detail": "Stop messaging chats that said STOP."},
        {"title": "Check chat health weekly", "priority": 4, "expected_impact": "low",
         "detail": ""},
    ],
    "evidence": {"opt_out_chats": [], "unhealthy_chats": []},
    "summary_markdown": "# Reputation audit\n\nPrimary driver: **low engagement**.",
}


@dataclass(slots=True)
class _Audit:
    audit_id: str
    phone_number: str
    started_at: float
    started_wall: datetime  # for generated_at, whatever clock the desk runs on
    ready_at: float  # pending before, complete (or error) from then on
    report: dict[str, Any]
    fail: bool


@dataclass(slots=True)
class AuditScript:
    """How audits behave: seconds until ready, the report, the cooldown after, failure."""

    delay: float = 0.0
    report: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULT_REPORT))
    cooldown: float = 0.0
    fail: bool = False


class AuditDesk:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock  # seconds; tests pass their own to age audits past KEEP
        self._script = AuditScript()
        self._audits: dict[str, _Audit] = {}  # by audit_id, while readable
        self._latest: dict[str, _Audit] = {}  # by phone number: the line's newest audit
        self._cooldown_until: dict[str, float] = {}
        self.started = 0  # audits created
        self.joined = 0  # starts answered with the audit already running
        self.requested = 0  # start requests, whatever the answer (429 included)

    def configure(self, **changes: Any) -> None:
        """Change the script (``delay``, ``report``, ``cooldown``, ``fail``) for new audits."""
        with self._lock:
            for key, value in changes.items():
                setattr(self._script, key, value)

    def finish_running(self) -> None:
        """Let every running audit be complete from now on (tests: no racing a delay)."""
        with self._lock:
            now = self._clock()
            for audit in self._latest.values():
                if audit.ready_at > now:
                    audit.ready_at = now
                    self._cooldown_until[audit.phone_number] = now + self._script.cooldown

    def start_cooldown(self, phone_number: str, seconds: float) -> None:
        with self._lock:
            self._cooldown_until[phone_number] = self._clock() + seconds

    def start(self, phone_number: str) -> tuple[int, bytes, dict[str, str]]:
        trace_id = new_trace_id()
        headers = {"X-Trace-ID": trace_id}
        with self._lock:
            self.requested += 1
            now = self._clock()
            running = self._latest.get(phone_number)
            if running is not None and running.ready_at > now:
                # Linq answers a start during a running audit like a fresh one, with the
                # running audit's id, so a retried start picks it back up.
                self.joined += 1
                return 202, _started(running.audit_id), headers
            until = self._cooldown_until.get(phone_number, 0.0)
            if until > now:
                wait = until - now
                headers["Retry-After"] = str(math.ceil(wait))
                return 429, render_error(429, trace_id=trace_id, retry_after=math.ceil(wait)), \
                    headers
            audit = _Audit(f"aud_{uuid.uuid4().hex[:16]}", phone_number, now,
                           datetime.now(UTC), now + self._script.delay,
                           copy.deepcopy(self._script.report), self._script.fail)
            self._audits[audit.audit_id] = audit
            self._latest[phone_number] = audit
            # The cooldown runs from the audit's end (scripted now, since the end is known).
            self._cooldown_until[phone_number] = audit.ready_at + self._script.cooldown
            self.started += 1
            return 202, _started(audit.audit_id), headers

    def read(self, phone_number: str, audit_id: str) -> tuple[int, bytes]:
        with self._lock:
            now = self._clock()
            for old in [a for a in self._audits.values() if now - a.started_at > KEEP]:
                del self._audits[old.audit_id]
            audit = self._audits.get(audit_id)
            if audit is None or audit.phone_number != phone_number:  # gone, or another line's
                return 404, render_error(404, trace_id=new_trace_id())
            body: dict[str, Any] = {"audit_id": audit_id, "phone": phone_number}
            if now < audit.ready_at:
                body["status"] = "pending"
            elif audit.fail:
                body.update(status="error", error="The audit could not be completed")
            else:
                body.update(status="complete", report=audit.report,
                            generated_at=(audit.started_wall + timedelta(
                    seconds=audit.ready_at - audit.started_at)).isoformat())
            return 200, orjson.dumps(body)


def _started(audit_id: str) -> bytes:
    return orjson.dumps({"audit_id": audit_id, "status": "pending"})

