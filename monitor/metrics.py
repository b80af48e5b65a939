"""Every metric the monitor exposes, defined in one place.

Account-level series use prometheus-client. Per-line series (three families, ~5 samples
per line) are kept pre-rendered in exposition format and re-rendered only where lines
changed: at 100k lines, rendering them through prometheus-client on every scrape would
take seconds, while joining cached blocks takes milliseconds.

``linq_reputation_line_severity``: 0 HEALTHY, 0.5 WATCH, 1 AT_RISK, 2 CRITICAL, 3 a status
Linq did not document (kept verbatim in the state set's ``status`` label; ranked worst so
that an alert rule on ``>= 2`` never misses it). WATCH, the monitor's early warning, is 0.5
so that rules and thresholds on ``>= 1`` keep meaning "AT_RISK or worse"; like an
undocumented status it gets a state-set series only while a line is in it, so the
per-line series count stays flat.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from monitor.core import status as st
from monitor.core.chats import CHAT_STATUSES
from monitor.core.labels import Labeler
from monitor.core.model import LineState

# `_created` samples double the series count and no dashboard here needs them.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LINE_FAMILIES = (
    ("linq_reputation_line_status",
     "Current reputation of a line as a state set: 1 for its status, 0 for the others."),
    ("linq_reputation_line_severity",
     "Reputation severity: 0 HEALTHY, 0.5 WATCH, 1 AT_RISK, 2 CRITICAL, "
     "3 undocumented status."),
    ("linq_reputation_line_status_since_timestamp_seconds",
     "Unix time at which the line's current status was first observed."),
)


class Metrics:
    def __init__(self, *, per_line: str = "full", labeler: Labeler | None = None) -> None:
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
        self.line_flagged = Gauge(
            "linq_reputation_line_flagged",
            "1 while Linq reports the line's service status FLAGGED (webhooks), else 0; "
            "present once a webhook reported the line.",
            ["account", "line_id", "phone_number"], registry=r)
        self.webhooks = Counter(
            "linq_reputation_webhooks",
            "Webhook requests by outcome (accepted, duplicate, rejected, malformed, "
            "too_large, ignored).", ["outcome"], registry=r)
        self.audits_skipped = Counter(
            "linq_reputation_audits_skipped",
            "Audits not started for a line that degraded: running (the account's audits at "
            "once), per_hour (its audits per hour), cooldown (audited within audit_cooldown).",
            ["account", "reason"], registry=r)
        self.webhook_events_expired = Counter(
            "linq_reputation_webhook_events_expired",
            "Webhook events for a number no poll showed within webhook_unmatched_expiry, "
            "given up.", ["account"], registry=r)
        self.line_series = LineSeries(mode=per_line)
        self.flapping = FlagSeries(
            "linq_reputation_line_flapping",
            "1 while a line is flapping (alerts paused until it is stable); absent otherwise.")
        self.line_info = LineInfo(labeler or Labeler([]))
        # Replicas (monitor/ha/coordinator.py): only the lease holder of an account exports
        # its leader sample and its per-line and per-account gauges.
        self.leader = Gauge("linq_reputation_leader",
                            "1 on the replica that holds the account's polling lease.",
                            ["account", "replica"], registry=r)
        # Chat health (monitor/service/chats.py). Per line only where a line has chats not
        # HEALTHY (absent means 0), per account by status: cardinality stays flat.
        self.line_unhealthy_chats = Gauge(
            "linq_reputation_line_unhealthy_chats",
            "The line's chats AT_RISK or CRITICAL among those active in the [chats] window; "
            "absent when there are none.", ["account", "line_id", "phone_number"], registry=r)
        self.account_chats = Gauge(
            "linq_reputation_line_chats",
            "Chats active in the [chats] window per account and health status (after each "
            "full sweep).", ["account", "status"], registry=r)
        self.chat_sweep_requests = Counter(
            "linq_reputation_chat_sweep_requests",
            "GET /v3/chats requests of the chat sweep by outcome (ok, rate_limited, error).",
            ["account", "outcome"], registry=r)
        self.chat_sweep_pages = Counter("linq_reputation_chat_sweep_pages",
                                        "Chat pages fetched and applied by the sweep.",
                                        ["account"], registry=r)
        self.chat_sweep_progress = Gauge("linq_reputation_chat_sweep_progress_pages",
                                         "Pages of the current chat sweep done so far.",
                                         ["account"], registry=r)
        self.chat_sweep_duration = Gauge(
            "linq_reputation_chat_sweep_last_duration_seconds",
            "How long the last full chat sweep took.", ["account"], registry=r)
        self.chat_sweep_completed = Gauge(
            "linq_reputation_chat_sweep_last_completed_timestamp_seconds",
            "Unix time the last full chat sweep completed.", ["account"], registry=r)
        self.live_replicas = Gauge("linq_reputation_replicas",
                                   "Replicas with a fresh heartbeat, as this replica sees it.",
                                   registry=r)

    def declare(self, *, accounts: Iterable[str], channels: Iterable[str]) -> None:
        """Create every labelled counter at 0, so that ``increase()`` sees the first event.

        A counter series born at 1 has no earlier sample to compare with: PromQL would
        miss the first failed poll, first transition or first abandoned notification.
        """
        for account in accounts:
            for outcome in ("success", "error"):
                self.polls.labels(account, outcome)
            self.skipped_items.labels(account)
            for reason in ("running", "per_hour", "cooldown"):
                self.audits_skipped.labels(account, reason)
            self.webhook_events_expired.labels(account)
            for outcome in ("ok", "rate_limited", "error"):
                self.chat_sweep_requests.labels(account, outcome)
            for before in st.MONITOR_STATUSES:
                for after in st.MONITOR_STATUSES:
                    if before != after:
                        self.transitions.labels(account, before, after)
        for channel in channels:
            for outcome in ("delivered", "failed", "gave_up"):
                self.notifications.labels(channel, outcome)
        for outcome in ("accepted", "duplicate", "rejected", "malformed", "too_large",
                        "ignored"):
            self.webhooks.labels(outcome)

    def set_unhealthy_chats(self, account: str, line_id: str, phone_number: str,
                            unhealthy: int) -> None:
        """A line's unhealthy chats; 0 removes its series (absent means none)."""
        if unhealthy:
            self.line_unhealthy_chats.labels(account, line_id, phone_number).set(unhealthy)
        else:
            with contextlib.suppress(KeyError):
                self.line_unhealthy_chats.remove(account, line_id, phone_number)

    def set_account_chats(self, account: str, counts: dict[str, int]) -> None:
        """The account's chats in the window by status; every documented status present."""
        for status in (*CHAT_STATUSES, *counts):
            self.account_chats.labels(account, status).set(counts.get(status, 0))

    def update_service_status(self, states: Iterable[LineState]) -> None:
        """Keep ``linq_reputation_line_flagged`` in step with lines' service status."""
        for state in states:
            if state.service_status is None:
                continue
            labels = (state.account, state.line_id, state.phone_number)
            if state.present:
                self.line_flagged.labels(*labels).set(
                    0 if state.service_status == "ACTIVE" else 1)
            else:
                with contextlib.suppress(KeyError):
                    self.line_flagged.remove(*labels)

    def pieces(self, *, lines: list[Block] | None = None) -> list[Block]:
        """The whole exposition as byte blocks, for streaming without one huge copy.

        ``lines``: the per-line block, when the caller rendered it already
        (``line_series.pieces()`` on a worker thread); call this on the event loop.
        """
        if lines is None:
            lines = self.line_series.pieces()
        return [generate_latest(self.registry), *lines, self.flapping.render(),
                *self.line_info.pieces()]

    def render(self) -> bytes:
        return text(self.pieces())


class Spliced:
    """A block of exposition text kept as the byte strings it is made of, joined only
    while it is sent (``stream``): a line's labels are repeated in each of its five
    samples, and keeping one copy of them per line instead of one per sample more than
    halves what the rendered series hold (70 MB of text at 100k lines; bench/RESULTS.md,
    "RSS and steady CPU")."""

    __slots__ = ("parts", "size")

    def __init__(self, parts: tuple[bytes, ...], size: int) -> None:
        self.parts = parts
        self.size = size

    def __len__(self) -> int:
        return self.size


Block = bytes | Spliced


def stream(pieces: Iterable[Block], *, chunk: int = 1 << 20) -> Iterator[bytes]:
    """Group small blocks into ~1 MiB writes."""
    group: list[bytes] = []
    size = 0
    for piece in pieces:
        if isinstance(piece, Spliced):
            group.extend(piece.parts)
            size += piece.size
        else:
            group.append(piece)
            size += len(piece)
        if size >= chunk:
            yield b"".join(group)
            group, size = [], 0
    if group:
        yield b"".join(group)


def text(pieces: Iterable[Block]) -> bytes:
    """The blocks joined into one byte string."""
    return b"".join(stream(pieces))


class LineSeries:
    """Per-line samples, rendered incrementally, grouped by family as the format requires.

    Lines are spread over ``BUCKETS`` buckets by key. A bucket keeps its rendered bytes
    (one block per family) until one of its lines changes; a scrape re-renders only the
    dirty buckets (a steady poll touches a few dozen) and joins the rest as they are. The
    buckets hold the poller's own LineState objects, so the only extra memory is the
    rendered text itself.

    ``update`` (the event loop, after a commit) only records the new states; ``pieces``
    applies them and renders, and may run on a worker thread, so that a scrape never
    holds the event loop for a render (the first one renders every line: ~0.7 s at 100k).
    Each ``update`` call is applied whole or not at all: a scrape shows a poll's changes
    all together or none of them.

    ``mode`` "severity" keeps only the severity gauge (one series per line instead of five)
    for very large fleets; "off" exposes no per-line series at all.
    """

    BUCKETS = 4096

    def __init__(self, *, mode: str = "full") -> None:
        self._mode = mode
        self._families = [i for i in range(len(_LINE_FAMILIES))
                          if mode == "full" or (mode == "severity" and i == 1)]
        # Touched only by ``pieces`` (one caller at a time: _render_lock).
        self._lines: list[dict[tuple[str, str], LineState]] = [{} for _ in range(self.BUCKETS)]
        self._rendered: list[tuple[Block, Block, Block] | None] = [None] * self.BUCKETS
        self._render_lock = threading.Lock()
        # States recorded by ``update`` and not applied yet, newest per line (so it stays
        # bounded by the number of lines however long nobody scrapes); _pending_lock is
        # held only to add to it or to take it whole, never while rendering.
        self._pending: dict[tuple[str, str], LineState] = {}
        self._pending_lock = threading.Lock()

    def update(self, states: Iterable[LineState]) -> None:
        if not self._families:
            return
        with self._pending_lock:
            pending = self._pending
            for state in states:
                pending[(state.account, state.line_id)] = state

    def pieces(self) -> list[Block]:
        """The exposition text as an ordered list of existing blocks (no copying).

        Safe on any thread. The list is a consistent snapshot: every ``update`` made
        before the call, none made after.
        """
        with self._render_lock:
            with self._pending_lock:
                pending, self._pending = self._pending, {}
            for key, state in pending.items():
                bucket = hash(key) % self.BUCKETS
                if state.present:
                    self._lines[bucket][key] = state
                else:
                    self._lines[bucket].pop(key, None)
                self._rendered[bucket] = None
            del pending
            blocks = [self._bucket(b) for b in range(self.BUCKETS)]
        parts: list[Block] = []
        for family in self._families:
            name, help_text = _LINE_FAMILIES[family]
            parts.append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n".encode())
            parts.extend(block[family] for block in blocks if block[family])
        return parts

    def _bucket(self, bucket: int) -> tuple[Block, Block, Block]:
        block = self._rendered[bucket]
        if block is None:
            full = self._mode == "full"
            # Each sample is (its family's opening, the line's labels, its own end): the
            # labels are one byte string per line, shared by the line's five samples.
            status_set: list[bytes] = []
            severity: list[bytes] = []
            since: list[bytes] = []
            sizes = [0, 0, 0]
            for state in self._lines[bucket].values():
                labels = (f'account="{_escape(state.account)}",'
                          f'line_id="{_escape(state.line_id)}",'
                          f'phone_number="{_escape(state.phone_number)}"').encode()
                end = _severity_end(state.status)
                severity += (_SEVERITY, labels, end)
                sizes[1] += len(_SEVERITY) + len(labels) + len(end)
                if full:
                    statuses = (st.KNOWN_STATUSES if state.status in st.KNOWN_STATUSES
                                else (*st.KNOWN_STATUSES, state.status))
                    # The end of one sample and the opening of the next are one string.
                    status_set.append(_STATUS)
                    sizes[0] += len(_STATUS)
                    last = len(statuses) - 1
                    for i, s in enumerate(statuses):
                        end = _status_end(s, s == state.status, i < last)
                        status_set += (labels, end)
                        sizes[0] += len(labels) + len(end)
                    end = _since_end(state.since.timestamp())
                    since += (_SINCE, labels, end)
                    sizes[2] += len(_SINCE) + len(labels) + len(end)
            block = (Spliced(tuple(status_set), sizes[0]), Spliced(tuple(severity), sizes[1]),
                     Spliced(tuple(since), sizes[2]))
            self._rendered[bucket] = block
        return block


_STATUS = b"linq_reputation_line_status{"
_SEVERITY = b"linq_reputation_line_severity{"
_SINCE = b"linq_reputation_line_status_since_timestamp_seconds{"


@functools.lru_cache(maxsize=256)
def _status_end(status: str, current: bool, more: bool) -> bytes:
    """A state-set sample after its labels (and, if ``more``, the next one's opening)."""
    return (f',status="{_escape(status)}"}} {1 if current else 0}\n'.encode()
            + (_STATUS if more else b""))


@functools.lru_cache(maxsize=4096)
def _since_end(timestamp: float) -> bytes:
    """A since sample after its labels: one string per time, as lines seen together (a
    cold start sees every line at once) share their ``since``."""
    return f"}} {timestamp:.3f}\n".encode()


@functools.lru_cache(maxsize=256)
def _severity_end(status: str) -> bytes:
    """A severity sample after its labels."""
    return f"}} {st.rank(status)}\n".encode()


class FlagSeries:
    """A per-line 0/1 family that is 1 for few lines: only those lines get a series."""

    def __init__(self, name: str, help_text: str) -> None:
        self._name = name
        self._header = f"# HELP {name} {help_text}\n# TYPE {name} gauge\n"
        self._lines: dict[tuple[str, str], str] = {}

    def update(self, states: Iterable[LineState], flagged: Callable[[LineState], bool]) -> None:
        for state in states:
            key = (state.account, state.line_id)
            if state.present and flagged(state):
                self._lines[key] = (f'{self._name}{{account="{_escape(state.account)}",'
                                    f'line_id="{_escape(state.line_id)}",'
                                    f'phone_number="{_escape(state.phone_number)}"}} 1\n')
            else:
                self._lines.pop(key, None)

    def render(self) -> bytes:
        return (self._header + "".join(self._lines.values())).encode()
class LineInfo:
    """``linq_reputation_line_info``: the name and labels the config gives a line, value 1.

    It also carries ``line_type`` (``iMessage`` | ``RCS`` as the list reports it, empty
    while unknown).

    Only lines with a name or labels get a series, so a fleet without ``[[lines]]`` adds
    none. Every series carries ``name`` and one ``label_<key>`` per key used anywhere in
    the config (empty when the line lacks it), so that joins in PromQL
    (``* on(account, line_id) group_left(name, label_team) linq_reputation_line_info``)
    see one consistent label set. The block is small and re-rendered only after a change.
    """

    NAME = "linq_reputation_line_info"
    HEADER = (f"# HELP {NAME} Name and labels given to a line by the config ([[lines]]).\n"
              f"# TYPE {NAME} gauge\n").encode()

    def __init__(self, labeler: Labeler) -> None:
        self._labeler = labeler
        self._samples: dict[tuple[str, str], str] = {}
        self._block: bytes | None = b""

    def update(self, states: Iterable[LineState]) -> None:
        """Follow ``states`` (the poller's committed lines): add, change or drop series."""
        if not self._labeler:
            return
        for state in states:
            key = (state.account, state.line_id)
            meta = self._labeler.meta(state)
            if state.present and (meta.name is not None or meta.labels):
                labels = "".join(f',label_{k}="{_escape(meta.labels.get(k, ""))}"'
                                 for k in self._labeler.label_keys)
                sample = (f'{self.NAME}{{account="{_escape(state.account)}",'
                          f'line_id="{_escape(state.line_id)}",'
                          f'phone_number="{_escape(state.phone_number)}",'
                          f'line_type="{_escape(state.line_type or "")}",'
                          f'name="{_escape(meta.name or "")}"{labels}}} 1\n')
                if self._samples.get(key) == sample:
                    continue
                self._samples[key] = sample
            elif self._samples.pop(key, None) is None:
                continue
            self._block = None

    def pieces(self) -> list[bytes]:
        """The family as byte blocks; none at all while no line has a name or labels."""
        if not self._samples:
            return []
        if self._block is None:
            self._block = "".join(self._samples.values()).encode()
        return [self.HEADER, self._block]


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


