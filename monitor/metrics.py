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
    def __init__(self, *, per_line: str = "full") -> None:
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
        self.line_series = LineSeries(mode=per_line)

    def render(self) -> bytes:
        return generate_latest(self.registry) + self.line_series.render()


class LineSeries:
    """Pre-rendered per-line samples, grouped by family as the exposition format requires.

    Each line keeps its three encoded sample blocks; a scrape joins them (one memcpy-speed
    pass) and the result is reused until a line changes. ``mode`` "severity" keeps only the
    severity gauge (one series per line instead of five) for very large fleets; "off"
    exposes no per-line series at all.
    """

    def __init__(self, *, mode: str = "full") -> None:
        self._mode = mode
        self._lines: dict[tuple[str, str], tuple[bytes, bytes, bytes]] = {}
        self._rendered: bytes | None = None

    def update(self, states: Iterable[LineState]) -> None:
        if self._mode == "off":
            return
        full = self._mode == "full"
        for state in states:
            key = (state.account, state.line_id)
            if not state.present:
                self._lines.pop(key, None)
                continue
            labels = (f'account="{_escape(state.account)}",line_id="{_escape(state.line_id)}",'
                      f'phone_number="{_escape(state.phone_number)}"')
            severity = f"linq_reputation_line_severity{{{labels}}} {st.rank(state.status)}\n"
            if full:
                statuses = st.KNOWN_STATUSES if st.is_known(state.status) else (
                    *st.KNOWN_STATUSES, state.status)
                status_set = "".join(
                    f'linq_reputation_line_status{{{labels},status="{_escape(s)}"}} '
                    f"{1 if s == state.status else 0}\n"
                    for s in statuses
                )
                since = (f"linq_reputation_line_status_since_timestamp_seconds{{{labels}}} "
                         f"{state.since.timestamp():.3f}\n")
                self._lines[key] = (status_set.encode(), severity.encode(), since.encode())
            else:
                self._lines[key] = (b"", severity.encode(), b"")
        self._rendered = None

    def render(self) -> bytes:
        if self._rendered is None:
            parts: list[bytes] = []
            for i, (name, help_text) in enumerate(_LINE_FAMILIES):
                if self._mode == "off" or (self._mode == "severity" and i != 1):
                    continue
                parts.append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n".encode())
                parts.extend(samples[i] for samples in self._lines.values())
            self._rendered = b"".join(parts)
        return self._rendered

    def __len__(self) -> int:
        return len(self._lines)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


