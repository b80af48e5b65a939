"""Simulated reputation audits: one per line at a time (409), a cooldown after (429), and a
scripted delay before the report is ready. Thread-safe; the app calls ``start``/``read``."""

from __future__ import annotations

import copy
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from monitor.simulator.wire import new_trace_id, render_error

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
class _Running:
    audit_id: str
    ready_at: float
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
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script = AuditScript()
        self._running: dict[str, _Running] = {}
        self._cooldown_until: dict[str, float] = {}
        self.started = 0

    def configure(self, **changes: Any) -> None:
        """Change the script (``delay``, ``report``, ``cooldown``, ``fail``) for new audits."""
        with self._lock:
            for key, value in changes.items():
                setattr(self._script, key, value)

    def finish_running(self) -> None:
        """Let every running audit be complete from now on (tests: no racing a delay)."""
        with self._lock:
            for running in self._running.values():
                running.ready_at = time.monotonic()

    def start_cooldown(self, phone_number: str, seconds: float) -> None:
        with self._lock:
            self._cooldown_until[phone_number] = time.monotonic() + seconds

    def start(self, phone_number: str) -> tuple[int, bytes, dict[str, str]]:
        trace_id = new_trace_id()
        headers = {"X-Trace-ID": trace_id}
        with self._lock:
            now = time.monotonic()
            running = self._running.get(phone_number)
            if running is not None:
                body = orjson.loads(render_error(409, trace_id=trace_id, code=1009))
                body["error"]["message"] = "An audit of this line is already running"
                body["error"]["audit_id"] = running.audit_id
                return 409, orjson.dumps(body), headers
            until = self._cooldown_until.get(phone_number, 0.0)
            if until > now:
                wait = until - now
                headers["Retry-After"] = str(math.ceil(wait))
                return 429, render_error(429, trace_id=trace_id, retry_after=math.ceil(wait)), \
                    headers
            audit_id = f"aud_{uuid.uuid4().hex[:16]}"
            self._running[phone_number] = _Running(audit_id, now + self._script.delay,
                                                   copy.deepcopy(self._script.report),
                                                   self._script.fail)
            self.started += 1
            return 202, orjson.dumps({"audit_id": audit_id, "status": "pending"}), headers

    def read(self, phone_number: str, audit_id: str) -> tuple[int, bytes]:
        with self._lock:
            running = self._running.get(phone_number)
            if running is None or running.audit_id != audit_id:
                return 404, render_error(404, trace_id=new_trace_id())
            if time.monotonic() < running.ready_at:
                return 200, orjson.dumps({"audit_id": audit_id, "status": "pending"})
            del self._running[phone_number]
            self._cooldown_until[phone_number] = time.monotonic() + self._script.cooldown
            if running.fail:
                return 200, orjson.dumps({"audit_id": audit_id, "status": "error"})
            return 200, orjson.dumps({"audit_id": audit_id, "status": "complete",
                                      "report": running.report})
