"""The monitor's own trouble: an account whose polls keep failing, a channel giving up,
webhooks that will not arrive or are refused.

Announced once when it starts and once when it clears, routed like a CRITICAL line.
Pure: the value and its default text.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.core.model import Message
from monitor.core.render import format_duration, format_time, shorten

_ERROR_LIMIT = 300


class TroubleKind(enum.StrEnum):
    POLLS_FAILING = "polls_failing"  # subject: an account with no good poll for stale_after
    DELIVERY_FAILING = "delivery_failing"  # subject: a channel whose sends are given up
    # subject: an account whose status_updated subscription is missing, inactive or points
    # elsewhere, or "signatures" when signed webhooks keep being rejected
    PUSH_FAILING = "push_failing"


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


def render_trouble(trouble: Trouble, *, now: datetime) -> Message:
    """The monitor's own trouble, or its clearing: routed like a CRITICAL."""
    subject = trouble.subject
    if trouble.kind is TroubleKind.PUSH_FAILING:
        return _render_push(trouble, now=now)
    if trouble.kind is TroubleKind.POLLS_FAILING:
        what = f"polls of account {subject}"
    else:
        what = f"deliveries to channel {subject}"
    if trouble.cleared_at is not None:
        lasted = format_duration(trouble.cleared_at - trouble.since)
        title = f"[RESOLVED] monitor: {what} working again after {lasted}"
        lines = [f"{what.capitalize()} work again since {format_time(trouble.cleared_at)}.",
                 f"The trouble began at {format_time(trouble.since)} and lasted {lasted}."]
    else:
        failing = format_duration(now - trouble.since)
        title = f"[MONITOR] {what} failing for {failing}"
        lines = [f"{what.capitalize()} have been failing since {format_time(trouble.since)} "
                 f"({failing})."]
        if trouble.kind is TroubleKind.POLLS_FAILING:
            lines.append("Line statuses are not being refreshed: a degraded line would go "
                         "unnoticed until polls succeed again.")
        else:
            lines.append("Notifications to this channel are being given up; check "
                         "`reputation-monitor status` for what was not delivered.")
    if trouble.failures is not None:
        lines.append(f"Failed attempts: {trouble.failures}")
    if trouble.last_success is not None:
        lines.append(f"Last success: {format_time(trouble.last_success)}")
    elif trouble.kind is TroubleKind.POLLS_FAILING:
        lines.append("Last success: never")
    if trouble.last_error:
        error = trouble.last_error
        if len(error) > _ERROR_LIMIT:
            error = error[:_ERROR_LIMIT - 1] + "…"
        lines.append(f"Last error: {error}")
    return Message(title=shorten(title), body="\n".join(lines))


def _render_push(trouble: Trouble, *, now: datetime) -> Message:
    what = ("signed webhooks" if trouble.subject == "signatures"
            else f"webhooks of account {trouble.subject}")
    if trouble.cleared_at is not None:
        lasted = format_duration(trouble.cleared_at - trouble.since)
        return Message(
            title=shorten(f"[RESOLVED] monitor: {what} arriving again after {lasted}"),
            body=f"{what.capitalize()} are set up and accepted again since "
                 f"{format_time(trouble.cleared_at)}.\n"
                 f"The trouble began at {format_time(trouble.since)} and lasted {lasted}.")
    lines = [f"Since {format_time(trouble.since)} ({format_duration(now - trouble.since)}): "
             f"{trouble.last_error or 'webhooks are not arriving'}.",
             "FLAGGED is known only from Linq's phone_number.status_updated webhook: a line "
             "Linq flags now would go unnoticed until this is fixed.",
             "Check `reputation-monitor webhook list` and the signing secret the daemon has."]
    return Message(title=shorten(f"[MONITOR] {what}: not arriving or refused"),
                   body="\n".join(lines))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
