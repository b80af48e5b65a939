"""Tolerant parsing of ``GET /v3/chats`` pages (linq-python 0.65.0's ``Chat``).

Only what chat health needs is read: the chat's id and last activity (``updated_at``), our
line (the handle with ``is_me: true``) and ``health_status {status, doc_url, updated_at}``.
The rules are the phone-number decoder's (api/payload.py): unknown fields ignored, unknown
statuses kept verbatim, an item that cannot be understood skipped alone and counted; a
body that is not ``{"chats": [...]}`` raises ApiPayloadError and the page changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from monitor.core.chat_record import ChatRecord
from monitor.errors import ApiPayloadError

PAGE_LIMIT = 100  # the API's maximum page size: fewest requests per sweep


@dataclass(frozen=True, slots=True)
class ChatPage:
    records: list[ChatRecord]
    next_cursor: str | None  # None: this was the last page
    skipped: int  # items that could not be understood
    trace_id: str | None = None


class _Health(msgspec.Struct, gc=False):
    status: str
    doc_url: str | None = None
    updated_at: str | None = None


class _Handle(msgspec.Struct, gc=False):
    handle: str = ""
    is_me: bool | None = None


class _Chat(msgspec.Struct, gc=False):
    id: str
    health_status: _Health
    handles: list[_Handle] = []
    updated_at: str | None = None


class _Page(msgspec.Struct, gc=False):
    chats: list[msgspec.Raw]
    next_cursor: Any = None


_PAGE = msgspec.json.Decoder(_Page)
_CHAT = msgspec.json.Decoder(_Chat)


def parse_chat_page(body: bytes | bytearray, *, trace_id: str | None = None) -> ChatPage:
    """One page's chats; raises ApiPayloadError for a body of the wrong shape."""
    try:
        page = _PAGE.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiPayloadError(f"chats page is not {{'chats': [...]}}: {exc}",
                              trace_id=trace_id) from None
    records: list[ChatRecord] = []
    skipped = 0
    for raw in page.chats:
        try:
            record = to_record(_CHAT.decode(raw))
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            # ValidationError is a DecodeError: a chat of the wrong shape is skipped alone.
            record = None
        if record is None:
            skipped += 1
        else:
            records.append(record)
    return ChatPage(records, _cursor(page.next_cursor), skipped, trace_id)


def decode_chat(data: Any, *, line: str | None = None,
                active_at: datetime | None = None) -> ChatRecord | None:
    """One chat from a webhook event's JSON (``chat.*`` data, or a message event's
    ``data.chat``, whose line the caller passes from ``owner_handle`` and whose activity is
    the event's time); None if it cannot be understood."""
    try:
        chat = msgspec.convert(data, _Chat)
    except (msgspec.ValidationError, RecursionError):
        return None
    return to_record(chat, line=line, active_at=active_at)


def to_record(chat: _Chat, *, line: str | None = None, active_at: datetime | None = None
              ) -> ChatRecord | None:
    """A decoded chat as the monitor keeps it; None without our line or any timestamp."""
    phone = line or next((h.handle for h in chat.handles if h.is_me and h.handle), None)
    health = chat.health_status
    changed = parse_time(health.updated_at)
    updated = parse_time(chat.updated_at) or active_at
    changed = changed or updated
    updated = updated or changed
    if phone is None or not chat.id or not health.status or changed is None or updated is None:
        return None
    # A health change is activity on the chat: the window never loses a fresh change.
    return ChatRecord(chat.id, phone, health.status, changed, max(updated, changed),
                      health.doc_url or None)


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time from Linq as a UTC datetime (naive means UTC), or None when it is
    missing or not one: a bad time never fails a page or an event."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _cursor(value: Any) -> str | None:
    # The SDK stops on a falsy cursor; a number is taken as its text rather than lost.
    if isinstance(value, bool) or value is None or value == "":
        return None
    return str(value) if isinstance(value, str | int) else None
