"""Whether Linq will push ``phone_number.status_updated`` to us: judged from the account's
webhook subscriptions (``GET /v3/webhook-subscriptions``).

FLAGGED (a line's service status) is only ever known from that event, so a subscription
that is gone, switched off or pointing elsewhere silently blinds the monitor to it. Pure:
the caller fetches the list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

STATUS_UPDATED = "phone_number.status_updated"


def subscription_problem(items: Iterable[Mapping[str, Any]], *,
                         expected_url: str | None) -> str | None:
    """Why the account would not get ``phone_number.status_updated`` at ``expected_url``
    (any target when None), or None when an active subscription covers it.

    An item missing ``is_active`` counts as active (older answers did not carry it).
    """
    covering = [i for i in items if STATUS_UPDATED in (i.get("subscribed_events") or [])]
    if not covering:
        return f"no webhook subscription to {STATUS_UPDATED}"
    active = [i for i in covering if i.get("is_active", True) is not False]
    if not active:
        return f"the webhook subscription to {STATUS_UPDATED} is inactive"
    if expected_url is None:
        return None
    if any(_same_url(i.get("target_url"), expected_url) for i in active):
        return None
    elsewhere = sorted({shown_url(i.get("target_url")) for i in active})
    return (f"no active webhook subscription to {STATUS_UPDATED} points at "
            f"{shown_url(expected_url)} (it points at {', '.join(elsewhere)})")


def shown_url(url: object) -> str:
    """A target URL fit for logs and alerts: scheme, host, port and path only (a query or
    userinfo may carry a routing token)."""
    if not isinstance(url, str):
        return "?"
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "?"
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def _same_url(given: object, expected: str) -> bool:
    return isinstance(given, str) and given.rstrip("/") == expected.rstrip("/")
