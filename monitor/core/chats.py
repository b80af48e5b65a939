"""Chat health of a line, summarised: what the WATCH early warning is decided from."""
from __future__ import annotations
from dataclasses import dataclass
from datetime import datetime

CHAT_STATUSES = ("HEALTHY", "AT_RISK", "CRITICAL", "OPTED_OUT")

@dataclass(frozen=True, slots=True)
class WorstChat:
    chat_id: str
    status: str            # AT_RISK | CRITICAL | OPTED_OUT (or any unknown string, kept verbatim)
    changed_at: datetime   # health_status.updated_at
    doc_url: str | None

@dataclass(frozen=True, slots=True)
class ChatHealthSummary:
    """One line's chats active in the window (updated_at within it), by health status."""
    account: str
    phone_number: str                 # E.164, the line (the handle with is_me: true)
    counts: dict[str, int]            # status -> chats active in the window with that status
    active: int                       # chats active in the window (sum of counts)
    worst: tuple[WorstChat, ...]      # up to 15: CRITICAL first, then AT_RISK, then OPTED_OUT; newest change first
    observed_at: datetime             # when this summary was computed (UTC)

    @property
    def unhealthy(self) -> int:       # AT_RISK + CRITICAL
        return self.counts.get("AT_RISK", 0) + self.counts.get("CRITICAL", 0)

    @property
    def opted_out(self) -> int:
        return self.counts.get("OPTED_OUT", 0)
