"""``reputation-monitor chats PHONE``: the line's unhealthy and opted-out chats, worst first.

Reads the database only (what the sweep and the webhooks stored); never the API.
"""

from __future__ import annotations

import json

from monitor.cli.shapes import iso
from monitor.cli.tables import table, terminal_width
from monitor.config import Config
from monitor.core.render import format_time
from monitor.service.runtime import open_current
from monitor.store.chats import ShownChat, line_chats


def print_chats(config: Config, *, line: str, as_json: bool) -> int:
    """Print the chats of `line` (phone number or line id) that are not HEALTHY."""
    engine, sessions = open_current(config, read_only=True)
    try:
        with sessions() as session:
            chats = line_chats(session, line)
    finally:
        engine.dispose()
    if as_json:
        print(json.dumps({"line": line, "chats": [chat_json(c) for c in chats]}, indent=2))
        return 0
    if not chats:
        print(f"no unhealthy or opted-out chats known for {line}")
        return 0
    print(table(("STATUS", "CHAT", "CHANGED", "LAST ACTIVE", "ACCOUNT", "DOC URL"), [
        (c.status, c.chat_id, format_time(c.changed_at), format_time(c.updated_at), c.account,
         c.doc_url or "-") for c in chats
    ], width=terminal_width()))
    return 0


def chat_json(chat: ShownChat) -> dict[str, object]:
    """One chat of ``chats --json``."""
    return {"account": chat.account, "chat_id": chat.chat_id,
            "phone_number": chat.phone_number, "status": chat.status,
            "changed_at": iso(chat.changed_at), "updated_at": iso(chat.updated_at),
            "doc_url": chat.doc_url}
