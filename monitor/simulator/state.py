"""The fake fleet behind the simulator: lines, their statuses, and what the next poll gets.

`Simulator` is shared between the server thread (answering polls) and the test thread
(changing the fleet), so every public method takes one lock. The lines and their cached
200 body live in `Fleet`.

How a list request is answered, first match wins:
1. a queued answer (`queue_error`, `queue_raw`, `queue_delay`), which consumes no step;
2. the next scenario step: its changes apply, then its answer (error, raw, delay) is given;
3. the current fleet, as a 200 body.

Chats (``GET /v3/chats``) live in `ChatDesk` (``sim.chats``, its own lock). A scenario's
``chats`` gives every initial line that many chats; a step's ``chats`` changes them at the
scenario clock's time for that step.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitor.simulator.audits import AuditDesk
from monitor.simulator.chats import ChatDesk
from monitor.simulator.fleet import Fleet
from monitor.simulator.scenario import LegacyMode, Scenario, Step
from monitor.simulator.webhooks import SubscriptionDesk
from monitor.simulator.wire import JSON, new_trace_id, render_error, retry_after_header


@dataclass(frozen=True, slots=True)
class SimResponse:
    """One answer of the list endpoint, ready to send after `delay` seconds."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(slots=True)
class _Answer:
    """How to answer a request; a queued one is used `times` times."""

    status: int = 200
    raw: bytes | None = None  # exact body; otherwise the error envelope or the fleet
    content_type: str = JSON
    retry_after: float | None = None
    retry_after_date: bool = False
    code: int | None = None
    delay: float = 0.0
    legacy_field: bool = False
    times: int = 1


class Simulator:
    """A mutable, thread-safe fake Linq fleet.

    `token` defaults to the scenario's token (``"sim-token"`` without a scenario). Lines are
    addressed by phone number or id wherever a method takes `phone_or_id`; an unknown one
    raises KeyError. Looping back to a scenario's first step restores the scenario's
    initial fleet, dropping changes made through these methods.
    """

    def __init__(self, scenario: Scenario | None = None, *, token: str | None = None) -> None:
        self._lock = threading.Lock()
        self._scenario = scenario if scenario is not None else Scenario()
        self._token = token if token is not None else self._scenario.token
        self._legacy: LegacyMode = self._scenario.legacy
        self._fleet = Fleet()
        self._fleet.reset(self._scenario.initial_lines())
        # The scenario clock starts when the scenario says, else now.
        self._start = self._scenario.start or datetime.now(UTC)
        self.chats = ChatDesk(rate_limit=self._scenario.chats_rate_limit)  # its own lock
        self._reset_chats()
        self._queue: deque[_Answer] = deque()
        self._next_step = 0
        self._request_count = 0
        self._served_count = 0
        self.audits = AuditDesk()  # reputation audits (their own lock)
        self.subscriptions = SubscriptionDesk()  # webhook subscriptions (their own lock)

    # -- the fleet -------------------------------------------------------------------------

    def add_line(
        self,
        phone_number: str,
        *,
        line_id: str | None = None,
        status: str = "HEALTHY",
        doc_url: str | None = None,
        forwarding_number: str | None = None,
        line_type: str | None = "iMessage",
    ) -> str:
        """Add a line at the end of the list; returns its id (default: uuid5 of the phone).

        Raises ValueError when the phone number or id is already present.
        """
        with self._lock:
            return self._fleet.add(
                phone_number,
                line_id=line_id,
                status=status,
                doc_url=doc_url,
                forwarding_number=forwarding_number,
                line_type=line_type,
            )

    def add_lines(self, count: int, *, status: str = "HEALTHY", prefix: str = "+1202") -> list[str]:
        """Add `count` generated lines (`prefix` + zero-padded counter); returns their ids.

        Numbers are padded to twelve characters (a North American E.164 number) and the
        counter continues across calls with the same prefix. Raises ValueError (nothing
        added) when the numbers would not fit E.164 or one already exists.
        """
        with self._lock:
            return self._fleet.add_generated(count, status=status, prefix=prefix)

    def set_status(self, phone_or_id: str, status: str, *, doc_url: str | None = None) -> None:
        """Change one line's reputation; `doc_url` defaults to the guide link for `status`."""
        with self._lock:
            self._fleet.set_status(self._fleet.resolve(phone_or_id), status, doc_url)

    def set_many(self, mapping: Mapping[str, str]) -> None:
        """Change several lines at once (one re-render); all keys are checked first."""
        with self._lock:
            ids = {self._fleet.resolve(key): status for key, status in mapping.items()}
            for line_id, status in ids.items():
                self._fleet.set_status(line_id, status)

    def remove_line(self, phone_or_id: str) -> None:
        """Drop a line from the list; `add_line` may bring it back."""
        with self._lock:
            self._fleet.remove(self._fleet.resolve(phone_or_id))

    def lines(self) -> list[dict[str, Any]]:
        """A copy of the fleet, in list order and in the API's item shape."""
        with self._lock:
            return self._fleet.snapshot()

    # -- how requests are answered ---------------------------------------------------------

    @property
    def token(self) -> str:
        with self._lock:
            return self._token

    def set_token(self, token: str) -> None:
        """Expect a different bearer token from now on (e.g. to test a rotated secret)."""
        with self._lock:
            self._token = token

    def set_legacy(self, mode: LegacyMode) -> None:
        """Emit `health_status` beside ("both") or instead of ("only") `reputation`, or not."""
        with self._lock:
            self._legacy = mode

    def queue_error(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        retry_after_date: bool = False,
        times: int = 1,
        code: int | None = None,
    ) -> None:
        """Answer the next `times` list requests with `status` and Linq's error envelope.

        `retry_after` adds a Retry-After header (seconds, or an HTTP date with
        `retry_after_date`) and ``error.retry_after``; `code` overrides the envelope's code.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"error status must be 4xx or 5xx, not {status}")
        self._enqueue(
            _Answer(
                status=status,
                retry_after=retry_after,
                retry_after_date=retry_after_date,
                code=code,
                times=times,
            )
        )

    def queue_raw(
        self, body: bytes | str, *, status: int = 200, times: int = 1, content_type: str = JSON
    ) -> None:
        """Answer the next `times` list requests with exactly `body` (drift, non-JSON)."""
        raw = body.encode() if isinstance(body, str) else body
        self._enqueue(_Answer(status=status, raw=raw, content_type=content_type, times=times))

    def queue_delay(self, seconds: float, *, times: int = 1) -> None:
        """Answer the next `times` list requests normally, but only after `seconds`."""
        if seconds < 0:
            raise ValueError("delay must not be negative")
        self._enqueue(_Answer(delay=seconds, times=times))

    def respond(self, authorization: str | None) -> SimResponse:
        """Answer one list request carrying this Authorization header (the app's entry)."""
        with self._lock:
            scheme, _, credentials = (authorization or "").partition(" ")
            if scheme.lower() != "bearer" or credentials != self._token:
                self._request_count += 1
                return self._reply(_Answer(status=401))
            return self._next_locked()

    def next_response(self) -> SimResponse:
        """Answer one authenticated list request, consuming a queued answer or a step."""
        with self._lock:
            return self._next_locked()

    @property
    def request_count(self) -> int:
        """List requests seen, whatever the answer (401s and errors included)."""
        return self._request_count

    @property
    def served_count(self) -> int:
        """List requests answered with the fleet as a 200 body (raw bodies not included)."""
        return self._served_count

    @property
    def render_count(self) -> int:
        """How often the fleet body was serialised (once per change, not per request)."""
        return self._fleet.render_count

    def _enqueue(self, answer: _Answer) -> None:
        if answer.times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._queue.append(answer)

    # -- internals; callers hold the lock ---------------------------------------------------

    def _next_locked(self) -> SimResponse:
        self._request_count += 1
        if self._queue:
            answer = self._queue[0]
            answer.times -= 1
            if answer.times == 0:
                self._queue.popleft()
            return self._reply(answer)
        return self._reply(self._take_step())

    def _take_step(self) -> _Answer:
        steps = self._scenario.step
        if self._next_step >= len(steps):
            if not (steps and self._scenario.loop):
                return _Answer()
            self._fleet.reset(self._scenario.initial_lines())
            self._reset_chats()
            self._next_step = 0
        step = steps[self._next_step]
        self._next_step += 1
        self._apply(step, self._scenario.step_time(self._start, self._next_step))
        return _Answer(
            status=step.error or 200,
            raw=step.raw.encode() if step.raw is not None else None,
            retry_after=step.retry_after,
            retry_after_date=step.retry_after_date,
            delay=step.delay,
            legacy_field=step.legacy_field,
        )

    def _reset_chats(self) -> None:
        self.chats.clear()
        if self._scenario.chats:
            for spec in self._scenario.initial_lines():
                self.chats.add_chats(spec.phone_number, self._scenario.chats, at=self._start)

    def scenario_time(self) -> datetime:
        """The scenario clock now: when the last step taken happened (its start before)."""
        with self._lock:
            return self._scenario.step_time(self._start, self._next_step)

    def _apply(self, step: Step, at: datetime) -> None:
        # The scenario was checked at load time, but methods above may have changed the
        # fleet since; apply each change as "make it so" rather than failing mid-poll.
        fleet = self._fleet
        for key in step.remove:
            if (line_id := fleet.find(key)) is not None:
                fleet.remove(line_id)
        for spec in step.add:
            for key in (spec.phone_number, spec.line_id):
                if (line_id := fleet.find(key)) is not None:
                    fleet.remove(line_id)
            fleet.add_spec(spec)
        for key, status in step.changes.items():
            if (line_id := fleet.find(key)) is not None:
                fleet.set_status(line_id, status)
        for key, counts in step.chats.items():
            if (line_id := fleet.find(key)) is not None:
                # A line added by a step has no chats of its own: nothing to sour.
                with contextlib.suppress(ValueError):
                    self.chats.set_counts(fleet.phone(line_id),
                                          {str(k): n for k, n in counts.items()}, at=at)

    def _reply(self, answer: _Answer) -> SimResponse:
        trace_id = new_trace_id()
        headers = {"X-Trace-ID": trace_id, "Content-Type": answer.content_type}
        if answer.retry_after is not None:
            headers["Retry-After"] = retry_after_header(
                answer.retry_after, as_date=answer.retry_after_date
            )
        if answer.raw is not None:
            body = answer.raw
        elif answer.status >= 400:
            body = render_error(
                answer.status, trace_id=trace_id, retry_after=answer.retry_after, code=answer.code
            )
        else:
            # legacy_field adds the old field; it cannot bring back `reputation` once gone.
            legacy = self._legacy
            if answer.legacy_field and legacy == "none":
                legacy = "both"
            body = self._fleet.body(legacy)
            self._served_count += 1
        return SimResponse(answer.status, body, headers, answer.delay)
