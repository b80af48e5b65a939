"""One chat as the monitor keeps it: which line it is on and its health, nothing else.

The API page decoder (api/chats.py) and the webhook path (webhooks/chats.py) both produce
these; the store (store/chats.py) writes a row only when one differs from what it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from monitor.core.chats import ChatHealthSummary

# Worst first: the order `ChatHealthSummary.worst` lists chats in. A status Linq did not
# document is kept verbatim and listed after these (unknown is not known to be worse).
WORST_ORDER = ("CRITICAL", "AT_RISK", "OPTED_OUT")
WORST_LIMIT = 15


@dataclass(frozen=True, slots=True)
class ChatRecord:
    """A chat's health as last seen. ``updated_at`` is the chat's last activity (what the
    window is measured on); ``changed_at`` when its health status last changed."""

    chat_id: str
    phone_number: str  # our line: the handle with is_me: true (owner_handle in events)
    status: str
    changed_at: datetime
    updated_at: datetime
    doc_url: str | None

    def newer_than(self, other: ChatRecord) -> bool:
        """Whether this sighting may replace `other`: a webhook and a sweep page can
        arrive out of order, and an older health never overwrites a newer one."""
        return (self.changed_at, self.updated_at) >= (other.changed_at, other.updated_at)


def fingerprint(summary: ChatHealthSummary) -> int:
    """Equal for two summaries equal but for when each was computed: what is remembered
    per line (an int, not the summary: 100,000 lines of summaries would cost tens of MB)
    to tell "this line's summary changed"."""
    return hash((tuple(sorted(summary.counts.items())), summary.active, summary.worst))
