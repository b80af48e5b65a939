"""Message and chat webhook events: the chat's ``health_status``, applied at once.

Every ``message.*`` event carries ``data.chat {id, health_status, owner_handle}`` (our line
is ``owner_handle``; the message's ``sent_at`` is the chat's latest activity), and a
``chat.*`` event whose data is the whole chat (``chat.created``) carries its handles and
health too. `chat_record` reads the chat out of such a body; `ChatEvents` hands it to chat
health (service/chat_health.py, through the `ChatSink` protocol) in the background, so
the webhook's answer never waits on it.

The event itself is recorded like any other (``webhook_events``, state ``other``: the
webhook-id makes a redelivery count once); this module acts only on a first delivery. A
crash between the record and the apply loses that one update until the sweep sees the
chat again: the sweep, not the event stream, is the complete source.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from monitor.api.chats import decode_chat, parse_time
from monitor.core.chat_record import ChatRecord
from monitor.errors import LeaseLost, StoreError

log = logging.getLogger(__name__)

CHAT_EVENT_PREFIXES = ("message.", "chat.")


def is_chat_event(event_type: str) -> bool:
    """Whether events of this type may carry a chat's health."""
    return event_type.startswith(CHAT_EVENT_PREFIXES)


def chat_record(body: bytes) -> ChatRecord | None:
    """The chat this event carries, with its health; None when it carries none usable."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
        return None
    event_type = document.get("event_type")
    data: dict[str, Any] = document["data"]
    created = parse_time(document.get("created_at"))
    if isinstance(event_type, str) and event_type.startswith("message."):
        chat = data.get("chat")
        owner = chat.get("owner_handle") if isinstance(chat, dict) else None
        line = owner.get("handle") if isinstance(owner, dict) else None
        if not isinstance(line, str) or not line:
            return None
        return decode_chat(chat, line=line, active_at=parse_time(data.get("sent_at")) or created)
    if isinstance(event_type, str) and event_type.startswith("chat."):
        return decode_chat(data, active_at=created)
    return None


class ChatSink(Protocol):
    """Where chats go: chat health (``service.chat_health.ChatHealth``)."""

    async def record(self, account: str, records: Sequence[ChatRecord]) -> object: ...


class ChatEvents:
    """Applies the chats of recorded events in the background; `drain` waits for them."""

    def __init__(self, sink: ChatSink) -> None:
        self._sink = sink
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, account: str, body: bytes) -> bool:
        """Apply the event's chat, if it carries one; whether it did."""
        record = chat_record(body)
        if record is None:
            return False
        task = asyncio.create_task(self._apply(account, record), name=f"chat-event:{account}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _apply(self, account: str, record: ChatRecord) -> None:
        try:
            await self._sink.record(account, [record])
        except (StoreError, LeaseLost) as exc:
            # The chat is seen again by the next sweep; nothing else to do here.
            log.error("chat event not applied: %s", exc,
                      extra={"account": account, "chat_id": record.chat_id})

