"""The simulator's chats: ``GET /v3/chats`` with health, cursor pages and a rate limit.

Shapes follow ``linq.types.Chat`` (linq-python 0.65.0): ``{chats: [Chat], next_cursor}``,
each chat with ``handles`` (ours marked ``is_me``) and ``health_status {status, doc_url,
updated_at}``. The cursor is an offset into the account's chats in creation order (the
SDK's own example shows ``next_cursor: "20"``), so a sweep that resumes from a cursor
sees every chat that existed when it started, and chats created since at the end.

Chats are kept compactly (one small record each) and rendered per page, so a benchmark
can hold hundreds of thousands of them. Thread-safe: one lock, like `Simulator`.

The rate limit is a sliding window of `rate_limit` requests per 60 s; a request over it
gets 429 with ``Retry-After`` (whole seconds until a slot frees) and code 1007, as Linq
answers elsewhere in its API. Counted requests: every authenticated call, limited or not.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from monitor.simulator.wire import new_trace_id, render_error

CHAT_STATUSES = ("HEALTHY", "AT_RISK", "CRITICAL", "OPTED_OUT")
CHAT_DOC_URL = "https://docs.linqapp.com/channel/imessage/guides/chats/chat-health#"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# The order `set_counts` fills the unhealthy statuses in.
_WORST_FIRST = ("CRITICAL", "AT_RISK", "OPTED_OUT")


def chat_doc_url(status: str) -> str:
    """The chat-health guide deep-link for `status` (opaque to clients)."""
    return CHAT_DOC_URL + status.lower().replace("_", "-")


def chat_id_for(phone_number: str, index: int) -> str:
    """The id of a line's `index`-th generated chat: stable across runs."""
    return "chat_" + hashlib.sha1(f"{phone_number}/{index}".encode()).hexdigest()[:24]


@dataclass(slots=True)
class _Chat:
    id: str
    line: str  # our phone number (the handle with is_me: true)
    other: str  # the other participant
    created_at: datetime
    updated_at: datetime
    status: str
    status_at: datetime


@dataclass(frozen=True, slots=True)
class ChatReply:
    status: int
    body: bytes
    headers: Mapping[str, str]


class ChatDesk:
    """Every chat of the fake account, in creation order."""

    def __init__(self, *, rate_limit: int | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._order: list[_Chat] = []
        self._by_id: dict[str, _Chat] = {}
        self._by_line: dict[str, list[_Chat]] = {}
        self._rate_limit = rate_limit
        self._monotonic = monotonic
        self._recent: deque[float] = deque()
        self.requests = 0  # authenticated GET /v3/chats, whatever the answer
        self.limited = 0  # of which answered 429

    # -- the chats -------------------------------------------------------------------------

    def add_chats(self, line: str, count: int, *, at: datetime,
                  status: str = "HEALTHY") -> list[str]:
        """Give `line` `count` more chats (ids from `chat_id_for`); returns their ids."""
        with self._lock:
            mine = self._by_line.setdefault(line, [])
            ids = []
            for index in range(len(mine), len(mine) + count):
                chat = _Chat(chat_id_for(line, index), line, f"+1555{index:07d}", at, at,
                             status, at)
                mine.append(chat)
                self._order.append(chat)
                self._by_id[chat.id] = chat
                ids.append(chat.id)
            return ids

    def set_status(self, chat_id: str, status: str, *, at: datetime) -> None:
        """Change one chat's health (and activity) at `at`; KeyError if there is none."""
        with self._lock:
            self._set(self._by_id[chat_id], status, at)

    def set_counts(self, line: str, counts: Mapping[str, int], *, at: datetime) -> None:
        """Make exactly ``counts[status]`` of the line's chats unhealthy in each status, the
        rest HEALTHY, changing as few chats as it can: a chat already in a wanted status
        keeps it; a chat no longer wanted in its status moves to another wanted one first
        (AT_RISK turning CRITICAL), then HEALTHY chats are used, in the line's order. Only
        chats whose status changes get a new ``updated_at``.

        Raises ValueError when the line has fewer chats than the counts need.
        """
        with self._lock:
            mine = self._by_line.get(line, [])
            need = {s: counts.get(s, 0) for s in _WORST_FIRST}
            if sum(need.values()) > len(mine):
                raise ValueError(f"line {line} has {len(mine)} chats, not {sum(need.values())}")
            surplus, healthy = [], []
            for chat in mine:
                if need.get(chat.status, 0) > 0:
                    need[chat.status] -= 1
                elif chat.status == "HEALTHY":
                    healthy.append(chat)
                else:
                    surplus.append(chat)
            spare = surplus + healthy
            for status in _WORST_FIRST:
                for _ in range(need[status]):
                    self._set(spare.pop(0), status, at)
            for chat in spare:
                self._set(chat, "HEALTHY", at)

    def clear(self) -> None:
        with self._lock:
            self._order.clear()
            self._by_id.clear()
            self._by_line.clear()

    def chat(self, chat_id: str) -> dict[str, Any]:
        """One chat in the API's shape (for webhook events); KeyError if there is none."""
        with self._lock:
            return _render(self._by_id[chat_id])

    def chats_of(self, line: str) -> list[dict[str, Any]]:
        with self._lock:
            return [_render(c) for c in self._by_line.get(line, [])]

    def __len__(self) -> int:
        return len(self._order)

    def set_rate_limit(self, per_minute: int | None) -> None:
        with self._lock:
            self._rate_limit = per_minute
            self._recent.clear()

    # -- the endpoint ----------------------------------------------------------------------

    def list(self, params: Mapping[str, str]) -> ChatReply:
        """Answer one authenticated ``GET /v3/chats`` with these query parameters."""
        with self._lock:
            self.requests += 1
            trace_id = new_trace_id()
            headers = {"X-Trace-ID": trace_id, "Content-Type": "application/json"}
            wait = self._over_limit()
            if wait is not None:
                self.limited += 1
                headers["Retry-After"] = str(math.ceil(wait))
                return ChatReply(429, render_error(429, trace_id=trace_id, retry_after=wait),
                                 headers)
            try:
                limit = int(params.get("limit", DEFAULT_LIMIT))
                start = int(params.get("cursor") or 0)
            except ValueError:
                return ChatReply(400, render_error(400, trace_id=trace_id), headers)
            if not 1 <= limit <= MAX_LIMIT or start < 0:
                return ChatReply(400, render_error(400, trace_id=trace_id), headers)
            line = params.get("from")
            pool = self._order if line is None else self._by_line.get(line, [])
            page = pool[start:start + limit]
            more = start + limit < len(pool)
            body = orjson.dumps({"chats": [_render(c) for c in page],
                                 "next_cursor": str(start + limit) if more else None})
            return ChatReply(200, body, headers)

    # -- internals; callers hold the lock ---------------------------------------------------

    def _set(self, chat: _Chat, status: str, at: datetime) -> None:
        if chat.status != status:
            chat.status, chat.status_at = status, at
            chat.updated_at = max(chat.updated_at, at)

    def _over_limit(self) -> float | None:
        """None if this request fits the window (and is counted in it); else the seconds
        until the oldest counted request leaves the window."""
        if self._rate_limit is None:
            return None
        now = self._monotonic()
        while self._recent and self._recent[0] <= now - 60:
            self._recent.popleft()
        if len(self._recent) >= self._rate_limit:
            return max(0.001, self._recent[0] + 60 - now)
        self._recent.append(now)
        return None


def _render(chat: _Chat) -> dict[str, Any]:
    return {
        "id": chat.id,
        "created_at": _iso(chat.created_at),
        "updated_at": _iso(chat.updated_at),
        "display_name": chat.other,
        "handles": [
            {"id": "h_" + chat.id[5:17] + "_me", "handle": chat.line, "is_me": True,
             "joined_at": _iso(chat.created_at), "service": "iMessage", "status": "active",
             "line_type": "iMessage"},
            {"id": "h_" + chat.id[5:17] + "_to", "handle": chat.other, "is_me": False,
             "joined_at": _iso(chat.created_at), "service": "iMessage", "status": "active"},
        ],
        "health_status": {"status": chat.status, "doc_url": chat_doc_url(chat.status),
                          "updated_at": _iso(chat.status_at)},
        "is_archived": False,
        "is_group": False,
        "service": "iMessage",
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
