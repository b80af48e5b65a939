"""Reputation statuses: their order, and what Linq recommends for each.

Linq documents three values. The API has been seen to drift (a docs snapshot listed
``FLAGGED``), so any other string is kept verbatim and ranked above CRITICAL: an unknown
value is something a human should look at, and ranking it high means it is never missed.

``WATCH`` is the monitor's own early warning, not Linq's: a line Linq reports HEALTHY whose
chats are souring (monitor/core/chats.py). It sits between HEALTHY and AT_RISK at rank 0.5,
so the numbers users already rely on (the severity gauge, the gate's ``severity``, alert
rules on ``>= 1``) keep their meaning for the three documented statuses.
"""

from __future__ import annotations

from typing import Final

HEALTHY: Final = "HEALTHY"
AT_RISK: Final = "AT_RISK"
CRITICAL: Final = "CRITICAL"
WATCH: Final = "WATCH"  # monitor-derived: HEALTHY per Linq, chats souring

# The statuses Linq documents (one state-set series each per line, in metrics.py).
KNOWN_STATUSES: Final[tuple[str, ...]] = (HEALTHY, AT_RISK, CRITICAL)
# Every status this monitor knows, in order: what per-status tables and counters list.
MONITOR_STATUSES: Final[tuple[str, ...]] = (HEALTHY, WATCH, AT_RISK, CRITICAL)

# WATCH is 0.5, not 1: renumbering would change what "severity >= 1" and a channel's
# "AT_RISK" mean to every existing dashboard, rule and gate client.
_RANK: Final[dict[str, float]] = {HEALTHY: 0, WATCH: 0.5, AT_RISK: 1, CRITICAL: 2}
UNKNOWN_RANK: Final = 3

# Paraphrased from Linq's Phone Reputation guide and SDK docs (see shared/linq-api.md).
RECOMMENDED_ACTION: Final[dict[str, str]] = {
    HEALTHY: "Send normally; the line is safe for onboarding new recipients.",
    WATCH: (
        "Slow outbound on these chats; check reply rate. Linq still reports the line "
        "HEALTHY, but many of its conversations are AT_RISK, CRITICAL or opted out, which "
        "Linq says raises the risk of the line being flagged: hold back new conversations "
        "on it and look at what the listed chats were sent."
    ),
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


def rank(status: str) -> float:
    """0 HEALTHY, 0.5 WATCH, 1 AT_RISK, 2 CRITICAL, 3 any status Linq did not document.

    Also the public severity (``linq_reputation_line_severity``, the gate's ``severity``).
    """
    return _RANK.get(status, UNKNOWN_RANK)


def is_degraded(status: str) -> bool:
    """AT_RISK or worse: what starts a degradation episode. WATCH is a warning, not one."""
    return rank(status) >= rank(AT_RISK)


def is_known(status: str) -> bool:
    return status in _RANK


def recommended_action(status: str) -> str:
    return RECOMMENDED_ACTION.get(status, UNKNOWN_ACTION)


def status_for_rank(value: float) -> str:
    """The documented status of a rank (for messages about a channel's ``min_status``)."""
    for status, status_rank in _RANK.items():
        if status_rank == value:
            return status
    return "an undocumented status"
