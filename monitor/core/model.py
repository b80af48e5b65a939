"""The values that flow through the pipeline: observations in, states and events out."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from monitor.core import status as st
from monitor.core.chats import WorstChat

# Nearly every line has heard nothing: they all share one immutable empty mapping instead
# of carrying an empty dict each (at 100k lines, per-line empties cost tens of MB).
NO_TOLD: Mapping[str, Told] = MappingProxyType({})


class Observation(NamedTuple):
    """One line as one successful poll (or a webhook) saw it.

    A NamedTuple rather than a frozen dataclass: a poll builds one per line (100k at a
    time), and a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``, which made building them cost about as much as decoding the
    whole answer (bench/RESULTS.md, "The whole daemon").
    """

    line_id: str
    phone_number: str
    status: str
    doc_url: str | None
    # iMessage | RCS (linq-python 0.65.0); None when not reported (an older API, a webhook):
    # the line keeps what it was last seen as.
    line_type: str | None = None


@dataclass(frozen=True, slots=True)
class Told:
    """What one channel last heard about a line's current episode, and when.

    ``silenced``: the channel did not hear it; the change was recorded as silenced, and the
    channel hears about the line if it is still degraded when the silence ends.
    ``recovery_owed``: the channel heard the degradation, but the recovery came during a
    silence; it hears of the recovery once the silence ends, so no page is left open.
    """

    status: str
    at: datetime
    silenced: bool = False
    recovery_owed: bool = False


@dataclass(frozen=True, slots=True)
class Pending:
    """A status seen but not yet confirmed (``confirm_polls`` / ``recover_polls``)."""

    status: str
    count: int
    since: datetime


@dataclass(frozen=True, slots=True)
class Flap:
    """Recent confirmed changes of a line, kept only while flap detection needs them."""

    changes: tuple[tuple[datetime, str], ...] = ()
    flapping: bool = False
    channels: frozenset[str] = frozenset()  # told it was flapping: they hear where it settles


class LineRef(Protocol):
    """Which line something is about: a line state, a history row, a digest entry or a
    ``LineKey``. Functions that look a line up (its name and labels, its silences) take
    this instead of three loose strings."""

    @property
    def account(self) -> str: ...

    @property
    def line_id(self) -> str: ...

    @property
    def phone_number(self) -> str: ...


@dataclass(frozen=True, slots=True)
class LineKey:
    """A line named by its three parts, where no richer value is at hand."""

    account: str
    line_id: str
    phone_number: str


@dataclass(frozen=True, slots=True)
class LineState:
    """What the monitor believes about one line, as persisted.

    ``status`` is the confirmed status and ``since`` when it was first observed;
    ``previous_status``/``previous_since`` describe the status before it, so any message
    can say from→to and for how long. ``degraded_since`` is when the current episode
    away from HEALTHY began. ``told`` maps each channel to what it last heard about the
    current episode: recoveries go to exactly those channels.
    """

    account: str
    line_id: str
    phone_number: str
    status: str
    doc_url: str | None
    since: datetime
    present: bool = True
    told: Mapping[str, Told] = field(default_factory=lambda: NO_TOLD)  # shared, read-only
    previous_status: str | None = None
    previous_since: datetime | None = None
    degraded_since: datetime | None = None
    pending: Pending | None = None
    flap: Flap | None = None

    @property
    def flapping(self) -> bool:
        return self.flap is not None and self.flap.flapping
    # Linq's service status (ACTIVE/FLAGGED), known only from webhooks; None until one
    # arrives. ``service_changed_at`` is Linq's changed_at of the event that set it.
    service_status: str | None = None
    service_changed_at: datetime | None = None
    # The kind of line as the list last reported it: iMessage or RCS (RCS and SMS only).
    line_type: str | None = None


class TransitionKind(enum.StrEnum):
    FIRST_SEEN = "first_seen"
    CHANGED = "changed"
    REMOVED = "removed"
    RETURNED = "returned"
    SERVICE = "service"  # service status ACTIVE <-> FLAGGED (webhooks only), not reputation


@dataclass(frozen=True, slots=True)
class Transition:
    """A recorded change of one line. ``from_status`` is None the first time a line is seen."""

    account: str
    line_id: str
    phone_number: str
    kind: TransitionKind
    from_status: str | None
    to_status: str
    doc_url: str | None
    at: datetime
    previous_since: datetime | None

    @property
    def status_changed(self) -> bool:
        return self.from_status != self.to_status


class NoticeKind(enum.StrEnum):
    DEGRADED = "degraded"  # worse than what the channel last heard
    IMPROVED = "improved"  # better, but still at or above the channel's min_status
    RECOVERED = "recovered"  # below the channel's min_status again (usually HEALTHY)
    UNKNOWN = "unknown"  # a status Linq does not document
    REMINDER = "reminder"  # still degraded after the channel's repeat_interval
    FLAPPING = "flapping"  # changing too often: per-change alerts stop
    SETTLED = "settled"  # stable again after flapping: where it settled
    DIAGNOSIS = "diagnosis"  # a reputation audit that finished after the alert went out
    TEST = "test"


@dataclass(frozen=True, slots=True)
class Notice:
    """What one channel must hear about one line (``silenced``: recorded, not sent).

    ``transition`` links the notice to the recorded change that caused it, if one did.
    """

    channel: str
    entry: Entry
    transition: Transition | None = None
    silenced: bool = False

    @property
    def kind(self) -> NoticeKind:
        return self.entry.kind


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str
    body_format: str = "text"  # text | markdown | html (Apprise's body formats)


@dataclass(frozen=True, slots=True)
class LineMeta:
    """What the config says about a line: a human name and labels for routing."""

    name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Entry:
    """What one message says about one line: the payload of an outbox row.

    Rendering happens when the message is sent, so that rows due together on a channel
    become one grouped message. Every kind carries the phone number, the line's name,
    from→to, how long the line was in the previous status and the doc_url the API gave.
    """

    kind: NoticeKind
    account: str
    line_id: str
    phone_number: str
    from_status: str | None
    to_status: str
    at: datetime  # when the line entered to_status (a reminder's own time is its send time)
    previous_since: datetime | None  # when from_status began
    doc_url: str | None
    name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    reason: str | None = None  # why now, when not simply "it changed"
    degraded_since: datetime | None = None  # start of the episode, for reminders
    sequence: tuple[tuple[datetime, str], ...] = ()  # recent changes, for flapping notices
    source: str = "poll"  # poll | webhook | policy
    # Linq's service status when the notice is about it: FLAGGED (alerted like CRITICAL),
    # or ACTIVE when a flag was lifted. None: the notice is about reputation only.
    service: str | None = None
    # What Linq's reputation audit found (monitor/core/audit.py), added while the row
    # waited up to audit_wait, or carried by a DIAGNOSIS follow-up.
    diagnosis: tuple[str, ...] = ()
    # A RECOVERED notice's channel threshold (its min_status) that the line dropped below.
    # A line that is not HEALTHY (CRITICAL → AT_RISK to a CRITICAL channel) has not
    # recovered: it is "no longer CRITICAL". None on other kinds.
    below: str | None = None
    # A notice about a WATCH line: why its chats put it there and its worst chats
    # (monitor/core/chats.py), added by the poller when the notice is queued.
    watch_reasons: tuple[str, ...] = ()
    chats: tuple[WorstChat, ...] = ()

    @property
    def still_degraded(self) -> bool:
        """A RECOVERED notice whose line is not HEALTHY: it left the channel's concern,
        but did not recover."""
        return self.kind is NoticeKind.RECOVERED and self.to_status != st.HEALTHY

    @property
    def level(self) -> str:
        """What the notice is about, for urgency: the service status when it is not ACTIVE
        (FLAGGED, ranked above CRITICAL), else the reputation status."""
        if self.service is not None and self.service != "ACTIVE":
            return self.service
        return self.to_status

    @property
    def time_in_previous(self) -> timedelta | None:
        if self.previous_since is None or self.from_status is None:
            return None
        return self.at - self.previous_since

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value, "account": self.account, "line_id": self.line_id,
            "phone_number": self.phone_number, "from_status": self.from_status,
            "to_status": self.to_status, "at": _iso(self.at),
            "previous_since": _iso(self.previous_since), "doc_url": self.doc_url,
            "name": self.name, "labels": dict(self.labels), "reason": self.reason,
            "degraded_since": _iso(self.degraded_since),
            "sequence": [[_iso(at), status] for at, status in self.sequence],
            "source": self.source, "service": self.service,
            "diagnosis": list(self.diagnosis), "below": self.below,
            "watch_reasons": list(self.watch_reasons),
            "chats": [{"chat_id": c.chat_id, "status": c.status,
                       "changed_at": _iso(c.changed_at), "doc_url": c.doc_url}
                      for c in self.chats],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Entry:
        return cls(
            kind=NoticeKind(data["kind"]), account=data["account"], line_id=data["line_id"],
            phone_number=data["phone_number"], from_status=data["from_status"],
            to_status=data["to_status"], at=_parse(data["at"]),
            previous_since=_parse_optional(data.get("previous_since")),
            doc_url=data.get("doc_url"), name=data.get("name"),
            labels=dict(data.get("labels") or {}), reason=data.get("reason"),
            degraded_since=_parse_optional(data.get("degraded_since")),
            sequence=tuple((_parse(at), status) for at, status in data.get("sequence") or ()),
            source=data.get("source", "poll"), service=data.get("service"),
            diagnosis=tuple(data.get("diagnosis") or ()), below=data.get("below"),
            watch_reasons=tuple(data.get("watch_reasons") or ()),
            chats=tuple(WorstChat(c["chat_id"], c["status"], _parse(c["changed_at"]),
                                  c.get("doc_url")) for c in data.get("chats") or ()),
        )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _parse_optional(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
