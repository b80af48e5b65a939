"""What the fake API's bytes look like: Linq's list body, error envelope and trace ids.

Kept apart from the state so the shapes (the part that must match linq-api.md) can be read
in one place.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable
from email.utils import formatdate
from typing import Any

import orjson

from monitor.simulator.scenario import LegacyMode

JSON = "application/json"
# Most partner lines are iMessage lines; RCS-only lines exist (linq-python 0.65.0).
DEFAULT_LINE_TYPE = "iMessage"
DOC_URL_BASE = "https://docs.linqapp.com/channel/imessage/guides/phone-numbers/phone-reputation#"
_ERROR_DOC_URL = "https://docs.linqapp.com/error/codes/{range}xxx/{code}/"

# (code, message) per HTTP status. 2004, 3006 and 1007 are documented; the fallbacks are
# made up, so clients should act on the HTTP status, as the real API advises.
_ERRORS: dict[int, tuple[int, str]] = {
    401: (2004, "Unauthorized: missing or invalid API token"),
    429: (1007, "Too many requests: slow down and retry later"),
    500: (3006, "Internal server error"),
}
_FALLBACK_CLIENT = (1000, "Bad request")
_FALLBACK_SERVER = (3006, "Internal server error")


def new_trace_id() -> str:
    """A random 32-lowercase-hex trace id, the form Linq uses."""
    return uuid.uuid4().hex


def default_doc_url(status: str) -> str:
    """The guide deep-link for `status` (the anchors are our guess; clients treat it as opaque)."""
    return DOC_URL_BASE + status.lower().replace("_", "-")


def make_reputation(status: str, doc_url: str | None = None) -> dict[str, str]:
    """A `reputation` object; `doc_url` defaults to the guide link for `status`."""
    return {"status": status, "doc_url": doc_url or default_doc_url(status)}


def make_item(
    line_id: str,
    phone_number: str,
    reputation: dict[str, str],
    forwarding: str | None,
    line_type: str | None = DEFAULT_LINE_TYPE,
) -> dict[str, Any]:
    """One PhoneNumber in its current shape (`reputation`, no deprecated alias).

    `reputation` may be shared between items: changes replace it, never mutate it.
    `line_type` (``iMessage`` | ``RCS``) is optional in linq-python 0.65.0: None leaves
    the key out, as an older API would.
    """
    item: dict[str, Any] = {
        "id": line_id,
        "phone_number": phone_number,
        "reputation": reputation,
        "forwarding_number": forwarding,
    }
    if line_type is not None:
        item["line_type"] = line_type
    return item


def render_fleet(items: Iterable[dict[str, Any]], legacy: LegacyMode) -> bytes:
    """The whole ``{"phone_numbers": [...]}`` body.

    Items are stored in the current shape, so the common case dumps them untouched; the
    legacy shapes build per-item copies (only drift tests use them, never at 100k scale).
    """
    if legacy == "none":
        shaped = items if isinstance(items, list) else list(items)
    elif legacy == "both":
        shaped = [{**item, "health_status": item["reputation"]} for item in items]
    else:
        shaped = [
            {
                "id": item["id"],
                "phone_number": item["phone_number"],
                "health_status": item["reputation"],
                "forwarding_number": item["forwarding_number"],
            }
            for item in items
        ]
    return orjson.dumps({"phone_numbers": shaped})


def render_error(
    status: int, *, trace_id: str, retry_after: float | None = None, code: int | None = None
) -> bytes:
    """Linq's error envelope for `status`, carrying `trace_id` (the same as X-Trace-ID)."""
    known, message = _ERRORS.get(status, _FALLBACK_SERVER if status >= 500 else _FALLBACK_CLIENT)
    code = known if code is None else code
    error: dict[str, Any] = {
        "status": status,
        "code": code,
        "message": message,
        "doc_url": _ERROR_DOC_URL.format(range=str(code)[0], code=code),
    }
    if retry_after is not None:
        # Whole seconds print as an integer, as the real API does; halves stay floats.
        seconds = float(retry_after)
        error["retry_after"] = int(seconds) if seconds.is_integer() else seconds
    return orjson.dumps({"success": False, "error": error, "trace_id": trace_id})


def retry_after_header(seconds: float, *, as_date: bool) -> str:
    """A Retry-After value: whole seconds (rounded up), or the HTTP date that far ahead."""
    if as_date:
        # Round the instant up: an HTTP date has no fractions, and early is worse than late.
        return formatdate(math.ceil(time.time() + seconds), usegmt=True)
    return str(math.ceil(seconds))
