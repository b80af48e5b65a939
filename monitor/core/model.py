"""The values that flow through the pipeline: observations in, states and events out."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

# Every LineState used to carry its own empty frozenset (216 bytes; CPython does not share
# empty ones): 21 MB at 100k lines. Channel sets are few, so equal ones are shared.
_CHANNEL_SETS: dict[frozenset[str], frozenset[str]] = {}
NO_CHANNELS: frozenset[str] = frozenset()


def channel_set(names: Iterable[str]) -> frozenset[str]:
    """A frozenset of channel names, the same object for equal sets."""
    channels = frozenset(names)
    return _CHANNEL_SETS.setdefault(channels, channels) if channels else NO_CHANNELS


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
    alerted_channels: frozenset[str] = NO_CHANNELS


class TransitionKind(enum.StrEnum):
    FIRST_SEEN = "first_seen"
    CHANGED = "changed"
    REMOVED = "removed"
    RETURNED = "returned"


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
