"""The fault audit itself (tests/support/audit.py): what it must refuse, on hand-made rows.

Fault tests trust it to say "clean"; these pin down that a change recorded twice, the
monitor's own trouble announced twice or never cleared, and a message no row explains are
not clean.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from monitor.store import migrate
from monitor.store.engine import make_engine, make_sessionmaker
from monitor.store.schema import Notification, TransitionRow
from tests.support.audit import audit
from tests.support.receiver import Received

AT = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)
CHANNELS = {"ops": "AT_RISK"}
PHONE = "+12025550101"


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    migrate.upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def change(sessions: sessionmaker[Session], before: str | None, after: str, *,
           second: int) -> Received | None:
    """Record a transition of the line; when the rule has the channel hear it, its delivered
    outbox row, and return the message that announced it."""
    at = AT.replace(second=second)
    with sessions.begin() as session:
        transition_id = session.scalars(insert(TransitionRow).returning(TransitionRow.id), [{
            "account": "main", "line_id": "L1", "phone_number": PHONE,
            "kind": "first_seen" if before is None else "changed", "from_status": before,
            "to_status": after, "at": at}]).one()
        if after == "HEALTHY":
            return None
        title = f"[{after}] {PHONE} degraded: {before} → {after} (main)"
        session.execute(insert(Notification), [{
            "transition_id": transition_id, "account": "main", "line_id": "L1",
            "channel": "ops", "kind": "degraded", "title": title, "body": "",
            "created_at": at, "state": "delivered", "attempts": 1, "next_attempt_at": at,
            "payload": {"kind": "degraded", "phone_number": PHONE, "from_status": before,
                        "to_status": after, "at": at.isoformat()}}])
    return Received("/ops", title, f"Changed at: {at:%Y-%m-%d %H:%M:%S} UTC", {})


def trouble(sessions: sessionmaker[Session], *, cleared: bool, since: int = 0) -> Received:
    """One announcement of the account's polls failing since second ``since`` of AT (or its
    clearing), delivered."""
    phase, title = ("clear", "[RESOLVED] monitor") if cleared else ("open", "[MONITOR] main")
    title += f" {since}"
    with sessions.begin() as session:
        session.execute(insert(Notification), [{
            "account": "", "line_id": "", "channel": "ops",
            "kind": "trouble_cleared" if cleared else "trouble", "title": title,
            "body": "polls", "created_at": AT, "state": "delivered", "attempts": 1,
            "next_attempt_at": AT, "payload": {"body_format": "text"},
            "dedupe_key": f"stale:main@{AT.replace(second=since).isoformat()}:{phase}:ops"}])
    return Received("/ops", title, "polls", {})


def test_every_change_alerted_once_and_a_trouble_announced_and_cleared_is_clean(
        sessions: sessionmaker[Session]) -> None:
    change(sessions, None, "HEALTHY", second=0)
    messages = [change(sessions, "HEALTHY", "CRITICAL", second=1),
                trouble(sessions, cleared=False), trouble(sessions, cleared=True)]
    result = audit(sessions, [m for m in messages if m is not None], CHANNELS)
    assert result.clean, result.summary()
    assert (result.delivered, result.own_delivered) == (1, 2)


def test_a_change_recorded_twice_is_a_broken_chain_even_when_each_was_alerted(
        sessions: sessionmaker[Session]) -> None:
    change(sessions, None, "HEALTHY", second=0)
    messages = [change(sessions, "HEALTHY", "CRITICAL", second=1),
                change(sessions, "HEALTHY", "CRITICAL", second=2)]
    result = audit(sessions, [m for m in messages if m is not None], CHANNELS)
    assert result.broken_chains == 1 and not result.clean
    assert "broken chain: transition 3" in result.summary()


def test_a_trouble_announced_twice_or_never_cleared_is_not_clean(
        sessions: sessionmaker[Session]) -> None:
    messages = [trouble(sessions, cleared=False)]
    result = audit(sessions, messages, CHANNELS)
    assert result.troubles_open == 1 and not result.clean

    messages.append(trouble(sessions, cleared=False, since=5))  # a new episode, uncleared
    result = audit(sessions, messages, CHANNELS)
    assert result.spurious == 1, result.summary()


def test_a_message_no_row_explains_is_a_stranger(sessions: sessionmaker[Session]) -> None:
    result = audit(sessions, [Received("/ops", "[MONITOR] main 0", "polls", {})], CHANNELS)
    assert result.strangers == 1 and not result.clean
    assert "stranger: message to /ops" in result.summary()
