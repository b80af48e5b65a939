"""The monitor's own trouble: an account whose polls keep failing, a channel giving up.

Announced once when it starts and once when it clears, routed like a CRITICAL line.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class TroubleKind(enum.StrEnum):
    POLLS_FAILING = "polls_failing"  # subject: an account with no good poll for stale_after
    DELIVERY_FAILING = "delivery_failing"  # subject: a channel whose sends are given up


@dataclass(frozen=True, slots=True)
class Trouble:
    """One episode of trouble. ``cleared_at`` is set on the notice that it is over.

    ``last_error`` must already be free of secrets (the stored poll error or the redacted
    delivery error); rendering shows it as given, cut to a few hundred characters.
    """

    kind: TroubleKind
    subject: str
    since: datetime
    cleared_at: datetime | None = None
    failures: int | None = None
    last_success: datetime | None = None
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "subject": self.subject, "since": _iso(self.since),
                "cleared_at": _iso(self.cleared_at), "failures": self.failures,
                "last_success": _iso(self.last_success), "last_error": self.last_error}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Trouble:
        return cls(kind=TroubleKind(data["kind"]), subject=data["subject"],
                   since=datetime.fromisoformat(data["since"]),
                   cleared_at=_parse(data.get("cleared_at")), failures=data.get("failures"),
                   last_success=_parse(data.get("last_success")),
                   last_error=data.get("last_error"))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
