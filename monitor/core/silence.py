"""Silences: "do not page anyone about these lines until then", as pure values.

A silence matches lines by one matcher: ``line`` (a phone number or a line id, exactly),
``label`` (``key=value`` among the line's labels from ``[[lines]]``) or ``account``. It is
active from ``starts_at`` until ``ends_at``, or until ``expired_at`` when someone ended it
early. What a silence does to alerting is the policy's business; this module only answers
"does it match?" and "is it on?".
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from monitor.core.labels import LABEL_NAME, LABEL_NAME_RULE
from monitor.core.model import LineRef


class MatcherKind(enum.StrEnum):
    LINE = "line"
    LABEL = "label"
    ACCOUNT = "account"


def parse_label_matcher(text: str) -> tuple[str, str]:
    """``"team=sales"`` → ``("team", "sales")``; raises ValueError saying what is wrong."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value:
        raise ValueError(f"{text!r} is not key=value (e.g. team=sales)")
    if not LABEL_NAME.match(key):
        raise ValueError(f"{key!r} is not a valid label name ({LABEL_NAME_RULE})")
    return key, value


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    kind: MatcherKind
    value: str  # a phone number or line id, "key=value", or an account name
    reason: str
    created_by: str
    created_at: datetime
    starts_at: datetime
    ends_at: datetime
    expired_at: datetime | None = None  # set when ended early by `silence expire`
    expired_by: str | None = None  # who ended it early (None before that was recorded)

    @property
    def until(self) -> datetime:
        """When the silence stops (or stopped) applying."""
        if self.expired_at is not None and self.expired_at < self.ends_at:
            return self.expired_at
        return self.ends_at

    @property
    def matcher(self) -> str:
        """``line=+14155550100``, ``label=team=sales``, ``account=main``: for people."""
        return f"{self.kind.value}={self.value}"

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.until

    def state(self, now: datetime) -> str:
        """``active``, ``pending`` (starts later), ``expired`` (ended early) or ``ended``."""
        if self.active(now):
            return "active"
        if now < self.starts_at and self.expired_at is None:
            return "pending"
        return "expired" if self.expired_at is not None else "ended"

    def matches(self, line: LineRef, labels: Mapping[str, str]) -> bool:
        """Whether the silence is about this line (whatever the time)."""
        if self.kind is MatcherKind.LINE:
            return self.value in (line.phone_number, line.line_id)
        if self.kind is MatcherKind.ACCOUNT:
            return self.value == line.account
        key, _, value = self.value.partition("=")
        return labels.get(key) == value


def silenced_by(
    silences: Iterable[Silence], line: LineRef, labels: Mapping[str, str], now: datetime,
) -> Silence | None:
    """The active silence covering this line that lasts longest, or None.

    The longest one, because that is the one that decides when the line is heard again.
    """
    covering = [s for s in silences
                if s.active(now) and s.matches(line, labels)]
    return max(covering, key=lambda s: (s.until, s.id), default=None)
