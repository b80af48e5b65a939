"""Chats and the chat sweep's progress: O(changes) writes, per-line summaries.

``apply_chats`` reads the stored rows of a page's chats (one indexed query on the primary
key) and writes only those whose status, times or link differ, so a sweep over chats that
did not change writes no chat rows at all. An older sighting never overwrites a newer one
(a webhook and a page can arrive out of order). ``summarise`` builds a line's
`ChatHealthSummary` from its chats active in the window (``updated_at`` within it), from the
``ix_chats_line`` index.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.core.chat_record import WORST_LIMIT, WORST_ORDER, ChatRecord
from monitor.core.chats import ChatHealthSummary, WorstChat
from monitor.errors import StoreError
from monitor.store.schema import ChatRow, ChatSweep, Line, as_utc

# Bound the IN lists: SQLite's default limit of bound parameters is 32766 on current
# builds but 999 on old ones; a page is at most 100 chats anyway.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class SweepProgress:
    """An account's sweep: where it is and what the current and last full sweep cost."""

    cursor: str | None = None  # None: no sweep under way (the next one starts from the top)
    started_at: datetime | None = None
    pages: int = 0
    requests: int = 0
    completed_at: datetime | None = None
    last_duration: float | None = None  # seconds
    last_pages: int | None = None
    last_requests: int | None = None


def apply_chats(sessions: sessionmaker[Session], account: str, records: Sequence[ChatRecord],
                *, progress: SweepProgress | None = None, checkpoint: bool = True) -> set[str]:
    """Store what changed among `records` in one transaction, with `progress` (if given)
    when this is a `checkpoint` or some chat changed: an unchanged page between
    checkpoints writes nothing at all.

    Returns the phone numbers of the lines whose chats changed. Raises StoreError.
    """
    latest: dict[str, ChatRecord] = {}
    for record in records:  # the same chat twice in one batch: keep the newer sighting
        held = latest.get(record.chat_id)
        if held is None or record.newer_than(held):
            latest[record.chat_id] = record
    for attempt in (1, 2):
        try:
            with sessions.begin() as session:
                changed = _apply(session, account, latest)
                if progress is not None and (checkpoint or changed):
                    _save_progress(session, account, progress)
                return changed
        except IntegrityError:
            # Another writer (a webhook on another replica) inserted one of these chats
            # between our read and our insert: read again and update instead.
            if attempt == 2:
                raise StoreError("cannot store chats: they kept changing under us") from None
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot store chats: {exc}") from exc
    raise AssertionError("unreachable")


def _apply(session: Session, account: str, latest: dict[str, ChatRecord]) -> set[str]:
    changed: set[str] = set()
    ids = list(latest)
    held: dict[str, ChatRow] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = session.scalars(select(ChatRow).where(
            ChatRow.account == account, ChatRow.chat_id.in_(ids[start:start + _CHUNK])))
        held.update((row.chat_id, row) for row in rows)
    for chat_id, record in latest.items():
        row = held.get(chat_id)
        if row is None:
            session.add(ChatRow(account=account, chat_id=chat_id,
                                phone_number=record.phone_number, status=record.status,
                                changed_at=record.changed_at, updated_at=record.updated_at,
                                doc_url=record.doc_url))
            changed.add(record.phone_number)
            continue
        stored = ChatRecord(row.chat_id, row.phone_number, row.status, row.changed_at,
                            row.updated_at, row.doc_url)
        if stored == record or not record.newer_than(stored):
            continue
        changed.update((row.phone_number, record.phone_number))
        row.phone_number, row.status, row.doc_url = (record.phone_number, record.status,
                                                     record.doc_url)
        row.changed_at, row.updated_at = record.changed_at, record.updated_at
    return changed


def load_progress(sessions: sessionmaker[Session], account: str) -> SweepProgress:
    """The account's sweep progress as stored; a fresh one if it never swept."""
    try:
        with sessions() as session:
            row = session.get(ChatSweep, account)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the chat sweep's progress: {exc}") from exc
    if row is None:
        return SweepProgress()
    return SweepProgress(row.cursor, row.started_at, row.pages, row.requests, row.completed_at,
                         row.last_duration, row.last_pages, row.last_requests)


def save_progress(sessions: sessionmaker[Session], account: str,
                  progress: SweepProgress) -> None:
    try:
        with sessions.begin() as session:
            _save_progress(session, account, progress)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot save the chat sweep's progress: {exc}") from exc


def _save_progress(session: Session, account: str, progress: SweepProgress) -> None:
    row = session.get(ChatSweep, account)
    if row is None:
        row = ChatSweep(account=account)
        session.add(row)
    row.cursor, row.started_at = progress.cursor, progress.started_at
    row.pages, row.requests = progress.pages, progress.requests
    row.completed_at, row.last_duration = progress.completed_at, progress.last_duration
    row.last_pages, row.last_requests = progress.last_pages, progress.last_requests


def summarise(sessions: sessionmaker[Session], account: str, phones: Iterable[str], *,
              since: datetime, now: datetime) -> list[ChatHealthSummary]:
    """A summary for each of `phones` (also one with no chats: all counts zero), from its
    chats active since `since`. Raises StoreError."""
    wanted = sorted(set(phones))
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    worst: dict[str, list[WorstChat]] = defaultdict(list)
    try:
        with sessions() as session:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start:start + _CHUNK]
                active = (ChatRow.account == account, ChatRow.phone_number.in_(chunk),
                          ChatRow.updated_at >= since)
                # Counted here, not by a GROUP BY: SQLite serves that from ix_chats_status
                # (its order saves a sort) and reads every chat of the account, ~80 ms a
                # chunk at 1M chats for every page or chat event that changes a line; this
                # reads the chunk's lines' chats through ix_chats_line.
                for phone, status in session.execute(
                        select(ChatRow.phone_number, ChatRow.status).where(*active)):
                    counts[phone][status] += 1
                for phone, chat_id, status, changed_at, doc_url in session.execute(
                        select(ChatRow.phone_number, ChatRow.chat_id, ChatRow.status,
                               ChatRow.changed_at, ChatRow.doc_url)
                        .where(*active, ChatRow.status != "HEALTHY")):
                    worst[phone].append(WorstChat(chat_id, status, changed_at, doc_url))
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read chats: {exc}") from exc
    return [ChatHealthSummary(
        account=account, phone_number=phone, counts=dict(sorted(counts[phone].items())),
        active=sum(counts[phone].values()), worst=worst_chats(worst[phone]), observed_at=now)
        for phone in wanted]


def worst_chats(chats: Iterable[WorstChat]) -> tuple[WorstChat, ...]:
    """Up to 15: CRITICAL, then AT_RISK, then OPTED_OUT, then unknown statuses; the newest
    change first within each; the chat id breaks ties so the order is stable."""
    rank = {status: n for n, status in enumerate(WORST_ORDER)}
    ordered = sorted(chats, key=lambda c: (rank.get(c.status, len(WORST_ORDER)),
                                           -c.changed_at.timestamp(), c.chat_id))
    return tuple(ordered[:WORST_LIMIT])


def troubled_lines(sessions: sessionmaker[Session], account: str) -> set[str]:
    """Lines with any chat not HEALTHY (active or not): re-summarised after a full sweep,
    since a chat leaving the window changes a summary without any row changing."""
    try:
        with sessions() as session:
            return set(session.scalars(select(ChatRow.phone_number).distinct().where(
                ChatRow.account == account, ChatRow.status != "HEALTHY")))
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read chats: {exc}") from exc


def account_counts(sessions: sessionmaker[Session], account: str, *,
                   since: datetime) -> dict[str, int]:
    """The account's chats active since `since`, by status (one aggregate query)."""
    try:
        with sessions() as session:
            return {status: n for status, n in session.execute(
                select(ChatRow.status, func.count()).where(
                    ChatRow.account == account, ChatRow.updated_at >= since)
                .group_by(ChatRow.status))}
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read chats: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ShownChat:
    account: str
    chat_id: str
    phone_number: str
    status: str
    changed_at: datetime
    updated_at: datetime
    doc_url: str | None


def line_chats(session: Session, phone_or_id: str, *,
               statuses: Sequence[str] | None = None) -> list[ShownChat]:
    """The chats of a line (its phone number, or its id as the poll knows it), every
    account, in the given statuses (all but HEALTHY unless told), worst first. For
    ``reputation-monitor chats``."""
    phone = session.scalar(select(Line.phone_number).where(Line.line_id == phone_or_id)
                           .limit(1)) or phone_or_id
    query = select(ChatRow).where(ChatRow.phone_number == phone)
    if statuses is None:
        query = query.where(ChatRow.status != "HEALTHY")
    else:
        query = query.where(ChatRow.status.in_(list(statuses)))
    rank = {status: n for n, status in enumerate(WORST_ORDER)}
    rows = [ShownChat(r.account, r.chat_id, r.phone_number, r.status,
                      as_utc(r.changed_at) or r.changed_at, as_utc(r.updated_at) or r.updated_at,
                      r.doc_url) for r in session.scalars(query)]
    return sorted(rows, key=lambda c: (rank.get(c.status, len(WORST_ORDER)),
                                       -c.changed_at.timestamp(), c.chat_id))

