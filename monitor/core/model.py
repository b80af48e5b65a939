"""The values that flow through the pipeline: observations in, states and events out."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Observation:
    """One line as one successful poll (or a webhook) saw it."""

    line_id: str
    phone_number: str
    status: str
    doc_url: str | None


@dataclass(frozen=True, slots=True)
class LineState:
    """What the monitor believes about one line, as persisted.

    ``since`` is when the current status was first observed. ``alerted_channels`` are the
    channels told about the current degradation episode: recoveries go to exactly those.
    """

    account: str
    line_id: str
    phone_number: str
    status: str
    doc_url: str | None
    since: datetime
    present: bool = True
    alerted_channels: frozenset[str] = field(default_factory=frozenset)
    # Linq's service status (ACTIVE/FLAGGED), known only from webhooks; None until one
    # arrives. ``service_changed_at`` is Linq's changed_at of the event that set it.
    service_status: str | None = None
    service_changed_at: datetime | None = None


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
    DEGRADED = "degraded"
    IMPROVED = "improved"
    RECOVERED = "recovered"
    UNKNOWN = "unknown"
    TEST = "test"


@dataclass(frozen=True, slots=True)
class Notice:
    """A message that one channel must receive about one transition."""

    channel: str
    kind: NoticeKind
    transition: Transition


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str
