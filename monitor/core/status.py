"""Reputation statuses: their order, and what Linq recommends for each.

Linq documents three values. The API has been seen to drift (a docs snapshot listed
``FLAGGED``), so any other string is kept verbatim and ranked above CRITICAL: an unknown
value is something a human should look at, and ranking it high means it is never missed.
"""

from __future__ import annotations

from typing import Final

HEALTHY: Final = "HEALTHY"
AT_RISK: Final = "AT_RISK"
CRITICAL: Final = "CRITICAL"

KNOWN_STATUSES: Final[tuple[str, ...]] = (HEALTHY, AT_RISK, CRITICAL)

_RANK: Final[dict[str, int]] = {HEALTHY: 0, AT_RISK: 1, CRITICAL: 2}
UNKNOWN_RANK: Final = 3

# Paraphrased from Linq's Phone Reputation guide and SDK docs (see shared/linq-api.md).
RECOMMENDED_ACTION: Final[dict[str, str]] = {
    HEALTHY: "Send normally; the line is safe for onboarding new recipients.",
    AT_RISK: (
        "Slow the line's send pace, avoid opening many new conversations at once, "
        "review messaging patterns and check chat health."
    ),
    CRITICAL: (
        "Pause outbound messaging on this line until it recovers; onboard new recipients "
        "onto a HEALTHY line instead."
    ),
}
UNKNOWN_ACTION: Final = (
    "Linq reported a status this monitor does not know. Open the doc_url and check the "
    "line in the Linq dashboard before sending more."
)


def rank(status: str) -> int:
    """0 HEALTHY, 1 AT_RISK, 2 CRITICAL, 3 any status Linq did not document."""
    return _RANK.get(status, UNKNOWN_RANK)


def is_known(status: str) -> bool:
    return status in _RANK


def recommended_action(status: str) -> str:
    return RECOMMENDED_ACTION.get(status, UNKNOWN_ACTION)


def status_for_rank(value: int) -> str:
    """The documented status of a rank (for messages about a channel's ``min_status``)."""
    for status, status_rank in _RANK.items():
        if status_rank == value:
            return status
    return "an undocumented status"
