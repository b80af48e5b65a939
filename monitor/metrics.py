"""Every metric the monitor exposes, defined in one place.

Account-level series use prometheus-client. Per-line series (three families, ~5 samples
per line) are kept pre-rendered in exposition format and updated only for lines that
changed: at 100k lines, rendering them through prometheus-client on every scrape would
take seconds, while joining cached strings takes milliseconds.

``linq_reputation_line_severity``: 0 HEALTHY, 1 AT_RISK, 2 CRITICAL, 3 a status Linq did
not document (kept verbatim in the state set's ``status`` label; ranked worst so that an
alert rule on ``>= 2`` never misses it).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from monitor.core import status as st
from monitor.core.model import LineState

# `_created` samples double the series count and no dashboard here needs them.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LINE_FAMILIES = (
    ("linq_reputation_line_status",
     "Current reputation of a line as a state set: 1 for its status, 0 for the others."),
    ("linq_reputation_line_severity",
     "Reputation severity: 0 HEALTHY, 1 AT_RISK, 2 CRITICAL, 3 undocumented status."),
    ("linq_reputation_line_status_since_timestamp_seconds",
     "Unix time at which the line's current status was first observed."),
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.lines = Gauge("linq_reputation_lines", "Lines per account and status.",
                           ["account", "status"], registry=r)
        self.polls = Counter("linq_reputation_polls", "Polls of the Linq API by outcome.",
                             ["account", "outcome"], registry=r)
        self.poll_duration = Histogram(
            "linq_reputation_poll_duration_seconds", "Duration of a whole poll cycle.",
            ["account"], registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.last_success = Gauge("linq_reputation_last_success_timestamp_seconds",
                                  "Unix time of the last successful poll.", ["account"],
                                  registry=r)
        self.up = Gauge("linq_reputation_up", "1 if the last poll of the account succeeded.",
                        ["account"], registry=r)
        self.transitions = Counter("linq_reputation_transitions",
                                   "Reputation changes detected.",
                                   ["account", "from_status", "to_status"], registry=r)
        self.notifications = Counter(
            "linq_reputation_notifications",
            "Notification attempts by outcome (delivered, failed, gave_up).",
            ["channel", "outcome"], registry=r)
        self.notifications_pending = Gauge("linq_reputation_notifications_pending",
                                           "Notifications waiting in the outbox.", registry=r)
        self.skipped_items = Counter("linq_reputation_skipped_items",
                                     "API items skipped because they could not be parsed.",
                                     ["account"], registry=r)
        self.line_series = LineSeries()

    def render(self) -> bytes:
        return generate_latest(self.registry) + self.line_series.render()


class LineSeries:
    """Pre-rendered per-line samples, grouped by family as the exposition format requires."""

    def __init__(self) -> None:
        self._status: dict[tuple[str, str], str] = {}
        self._severity: dict[tuple[str, str], str] = {}
        self._since: dict[tuple[str, str], str] = {}
        self._rendered: bytes | None = None

    def update(self, states: Iterable[LineState]) -> None:
        for state in states:
            key = (state.account, state.line_id)
            if not state.present:
                self._status.pop(key, None)
                self._severity.pop(key, None)
                self._since.pop(key, None)
                continue
            labels = (f'account="{_escape(state.account)}",line_id="{_escape(state.line_id)}",'
                      f'phone_number="{_escape(state.phone_number)}"')
            statuses = st.KNOWN_STATUSES if st.is_known(state.status) else (
                *st.KNOWN_STATUSES, state.status)
            self._status[key] = "".join(
                f'linq_reputation_line_status{{{labels},status="{_escape(s)}"}} '
                f'{1 if s == state.status else 0}\n'
                for s in statuses
            )
            severity = st.rank(state.status)
            self._severity[key] = f"linq_reputation_line_severity{{{labels}}} {severity}\n"
            self._since[key] = (f"linq_reputation_line_status_since_timestamp_seconds{{{labels}}} "
                                f"{state.since.timestamp():.3f}\n")
        self._rendered = None

    def drop_account(self, account: str) -> None:
        for family in (self._status, self._severity, self._since):
            for key in [k for k in family if k[0] == account]:
                del family[key]
        self._rendered = None

    def render(self) -> bytes:
        if self._rendered is None:
            parts: list[str] = []
            for (name, help_text), family in zip(
                _LINE_FAMILIES, (self._status, self._severity, self._since), strict=True
            ):
                parts.append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n")
                parts.append("".join(family.values()))
            self._rendered = "".join(parts).encode()
        return self._rendered


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def count_by_status(states: Iterable[LineState]) -> dict[str, int]:
    counts = dict.fromkeys(st.KNOWN_STATUSES, 0)
    for state in states:
        if state.present:
            counts[state.status] = counts.get(state.status, 0) + 1
    return counts
