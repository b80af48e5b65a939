"""Audit rows, and the audit's effect on the notifications of the transition it explains.

``enrich`` adds the diagnosis to the entries of notifications still waiting (pending and
unclaimed, checked by the conditional UPDATE) and releases them; the channels whose
notification already left get a separate diagnosis notification instead
(``queue_diagnosis``). ``annotate`` does the same for many transitions at once, for the
lines the audit budget left out (their alerts say why and go at once).

Every query here is served by an index (tests/test_query_plans.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.core.model import Entry, NoticeKind, Transition
from monitor.core.render import render_entry
from monitor.errors import StoreError
from monitor.store.schema import Audit, Line, Notification, TransitionRow

CHUNK = 500  # values per IN (...): well under SQLite's and PostgreSQL's parameter limits


@contextlib.contextmanager
def _mapped(what: str) -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot {what}: {type(exc).__name__}") from exc


def start(sessions: sessionmaker[Session], *, account: str, line_id: str | None,
          phone_number: str, now: datetime) -> int:
    try:
        with sessions.begin() as session:
            row = Audit(account=account, line_id=line_id, phone_number=phone_number,
                        state="pending", started_at=now)
            session.add(row)
            session.flush()
            return row.id
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record the audit: {type(exc).__name__}") from exc


def finish(sessions: sessionmaker[Session], row_id: int, *, state: str, now: datetime,
           audit_id: str | None = None, report: dict[str, Any] | None = None,
           error: str | None = None) -> None:
    values: dict[str, Any] = {"state": state, "completed_at": now, "error": error}
    if audit_id is not None:
        values["audit_id"] = audit_id
    if report is not None:
        values["report"] = report
        severity, driver = report.get("severity"), report.get("primary_driver")
        values["severity"] = severity if isinstance(severity, str) else None
        values["primary_driver"] = driver[:64] if isinstance(driver, str) and driver else None
    try:
        with sessions.begin() as session:
            session.execute(update(Audit).where(Audit.id == row_id).values(**values))
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot record the audit: {type(exc).__name__}") from exc


def latest(session: Session, phone_or_id: str) -> Audit | None:
    return session.scalars(
        select(Audit).where((Audit.phone_number == phone_or_id) | (Audit.line_id == phone_or_id))
        .order_by(Audit.id.desc()).limit(1)
    ).first()


def lines_with_phone(session: Session, phone_number: str) -> list[Line]:
    """Every line the monitor has recorded under this phone number, in any account,
    removed ones too (``present`` false)."""
    return list(session.scalars(
        select(Line).where(Line.phone_number == phone_number).order_by(Line.account)
    ))


def latest_per_line(session: Session) -> list[Audit]:
    """The newest audit of every phone number (for the gate API at start)."""
    newest = select(func.max(Audit.id)).group_by(Audit.phone_number)
    return list(session.scalars(select(Audit).where(Audit.id.in_(newest))))


# A line's newest transitions read to find one just committed, before reading them all.
_RECENT_TRANSITIONS = 16


def transition_id(sessions: sessionmaker[Session], t: Transition) -> int | None:
    """The row id of a committed transition (matched on line, time and statuses).

    Read through the line's index, newest first, and matched here: with ``at`` in the
    WHERE clause SQLite picks the index on ``at`` alone, and a first poll gives 100k
    transitions the same ``at``, so every audit scanned them (bench/whole.py's profile).
    The transition was just committed, so it is among the line's newest rows.
    """
    line = (TransitionRow.account == t.account, TransitionRow.line_id == t.line_id)
    with _mapped("find the transition"), sessions() as session:
        for limit in (_RECENT_TRANSITIONS, None):
            rows = session.execute(
                select(TransitionRow.id, TransitionRow.at, TransitionRow.to_status)
                .where(*line).order_by(TransitionRow.id.desc()).limit(limit)).all()
            for row_id, at, to_status in rows:
                if at == t.at and to_status == t.to_status:
                    return int(row_id)
            if len(rows) < _RECENT_TRANSITIONS:
                break
        return None


def enrich(sessions: sessionmaker[Session], transition: int, lines: Sequence[str], *,
           now: datetime) -> tuple[list[str], list[tuple[str, Entry]]]:
    """Add ``lines`` to the transition's waiting notifications and release them.

    The diagnosis goes into the row's entry, rendered with the rest when the message is
    sent. Returns (channels enriched, (channel, entry) of those that had already left).
    """
    enriched: list[str] = []
    missed: list[tuple[str, Entry]] = []
    with _mapped("add the diagnosis"), sessions.begin() as session:
        rows = session.execute(
            select(Notification.id, Notification.channel, Notification.payload)
            .where(Notification.transition_id == transition,
                   Notification.kind != NoticeKind.DIAGNOSIS.value,
                   Notification.state != "silenced")).all()
        for row_id, channel, payload in rows:
            if payload is None:
                continue  # written before entries were stored: nothing to add to
            entry = replace(Entry.from_json(payload), diagnosis=tuple(lines))
            done = session.execute(
                update(Notification)
                .where(Notification.id == row_id, Notification.state == "pending",
                       Notification.claimed_until.is_(None), Notification.attempts == 0)
                .values(payload=entry.to_json(), next_attempt_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if done:
                enriched.append(channel)
            else:
                missed.append((channel, entry))
    return enriched, missed


def release(sessions: sessionmaker[Session], transition: int, *, now: datetime) -> None:
    """Let the transition's held notifications go now (the audit will not add anything)."""
    with _mapped("release held notifications"), sessions.begin() as session:
        session.execute(
            update(Notification)
            .where(Notification.transition_id == transition, Notification.state == "pending",
                   Notification.next_attempt_at > now, Notification.attempts == 0)
            .values(next_attempt_at=now)
            .execution_options(synchronize_session=False))


def queue_diagnosis(sessions: sessionmaker[Session], transition: int,
                    missed: Sequence[tuple[str, Entry]], *, now: datetime) -> None:
    """A follow-up "diagnosis" message to each channel whose alert left without it (once
    per transition and channel: the dedupe key)."""
    with _mapped("queue the diagnosis"), sessions.begin() as session:
        for channel, alert in missed:
            entry = replace(alert, kind=NoticeKind.DIAGNOSIS, at=now, source="audit")
            key = f"diagnosis:{transition}:{channel}"
            if session.scalar(select(Notification.id)
                              .where(Notification.dedupe_key == key)) is not None:
                continue
            message = render_entry(entry, now=now)
            session.add(Notification(
                transition_id=transition, account=entry.account, line_id=entry.line_id,
                channel=channel, kind=entry.kind.value, title=message.title,
                body=message.body, created_at=now, state="pending", attempts=0,
                next_attempt_at=now, payload=entry.to_json(), deferred=False,
                dedupe_key=key))


def started_since(session: Session, account: str, since: datetime) -> list[datetime]:
    """When the account's audits started after ``since`` (the budget's last hour)."""
    return list(session.scalars(
        select(Audit.started_at).where(Audit.account == account, Audit.started_at > since)))


def annotate(sessions: sessionmaker[Session], account: str,
             items: Sequence[tuple[Transition, Sequence[str]]], *, now: datetime) -> int:
    """Add each transition's ``lines`` to its waiting notifications and release them now,
    in one transaction (a mass event's thousands of lines the budget left out). Rows
    already claimed or sent are left alone. Returns how many rows were changed."""
    lines_of = {(t.line_id, t.at, t.to_status): lines for t, lines in items}
    with _mapped("note the audits not started"), sessions.begin() as session:
        found: dict[int, Sequence[str]] = {}
        for chunk in _chunks(list(items)):
            # ``at`` wrapped so that no index on it applies: SQLite would otherwise pick
            # ix_transitions_at, and a cold poll gives 100k transitions the same ``at``, so
            # each chunk visited them all (0.06 s a chunk, ``transition_id`` above); through
            # the line's index it visits only the chunk's lines.
            unindexed_at = func.coalesce(TransitionRow.at, TransitionRow.at)
            rows = session.execute(
                select(TransitionRow.id, TransitionRow.line_id, TransitionRow.at,
                       TransitionRow.to_status)
                .where(TransitionRow.account == account,
                       TransitionRow.line_id.in_({t.line_id for t, _ in chunk}),
                       unindexed_at.in_({t.at for t, _ in chunk}))).all()
            for row_id, line_id, at, to_status in rows:
                lines = lines_of.get((line_id, at, to_status))
                if lines is not None:
                    found[row_id] = lines
        changes: list[dict[str, Any]] = []
        for chunk_ids in _chunks(sorted(found)):
            for row_id, transition, payload in session.execute(
                    select(Notification.id, Notification.transition_id, Notification.payload)
                    .where(Notification.transition_id.in_(chunk_ids),
                           Notification.kind != NoticeKind.DIAGNOSIS.value,
                           Notification.state == "pending",
                           Notification.claimed_until.is_(None),
                           Notification.attempts == 0)):
                if payload is None or transition is None:
                    continue
                entry = replace(Entry.from_json(payload), diagnosis=tuple(found[transition]))
                changes.append({"row": row_id, "new_payload": entry.to_json()})
        if not changes:
            return 0
        # The same guard as ``enrich``: a row a deliverer claimed meanwhile is left alone.
        # On the connection: one executemany, without the ORM's per-row bookkeeping.
        result = session.connection().execute(
            update(Notification)
            .where(Notification.id == bindparam("row"), Notification.state == "pending",
                   Notification.claimed_until.is_(None), Notification.attempts == 0)
            .values(payload=bindparam("new_payload"), next_attempt_at=now),
            changes)
        return int(result.rowcount)


_T = TypeVar("_T")


def _chunks(values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]
