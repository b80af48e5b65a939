"""Silences in the database: add, list, expire, and load them for the daemon.

Every function is one unit of work and raises StoreError if the database fails (nothing
written); ``expire_silence`` raises UsageError for an id that does not exist or a silence
that has already ended.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.core.render import format_time
from monitor.core.silence import MatcherKind, Silence
from monitor.errors import StoreError, UsageError
from monitor.store.schema import Line, SilenceRow


def add_silence(
    sessions: sessionmaker[Session], *, kind: MatcherKind, value: str, reason: str,
    created_by: str, starts_at: datetime, ends_at: datetime, now: datetime,
) -> Silence:
    """Store a new silence and return it with its id. ``ends_at`` must follow ``starts_at``."""
    if ends_at <= starts_at:
        raise UsageError("a silence must end after it starts")
    row = SilenceRow(matcher_kind=kind.value, matcher_value=value, reason=reason,
                     created_by=created_by, created_at=now, starts_at=starts_at,
                     ends_at=ends_at, expired_at=None)
    try:
        with sessions.begin() as session:
            session.add(row)
            session.flush()
            return _to_silence(row)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot store the silence: {exc}") from exc


def list_silences(
    sessions: sessionmaker[Session], now: datetime, *, include_expired: bool = False,
) -> list[Silence]:
    """Silences in the order they start; those that have ended only with ``include_expired``."""
    query = select(SilenceRow).order_by(SilenceRow.starts_at, SilenceRow.id)
    if not include_expired:
        query = query.where(SilenceRow.ends_at > now,
                            or_(SilenceRow.expired_at.is_(None), SilenceRow.expired_at > now))
    try:
        with sessions() as session:
            return [_to_silence(row) for row in session.scalars(query)]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read silences: {exc}") from exc


def load_silences(sessions: sessionmaker[Session], now: datetime) -> list[Silence]:
    """The silences that are active at ``now`` or start later: what the daemon decides
    with (``core.silence.silenced_by``), re-read before each planning step
    (monitor/service/silences.py); one query on the ``ends_at`` index."""
    return list_silences(sessions, now)


def expire_silence(sessions: sessionmaker[Session], silence_id: int, now: datetime, *,
                   by: str) -> Silence:
    """End a silence now, recording who did. Raises UsageError if there is no such silence
    or it has ended."""
    try:
        with sessions.begin() as session:
            # Conditional: of two people expiring the same silence, exactly one succeeds.
            result = session.execute(
                update(SilenceRow)
                .where(SilenceRow.id == silence_id, SilenceRow.expired_at.is_(None),
                       SilenceRow.ends_at > now)
                .values(expired_at=now, expired_by=by)
                .execution_options(synchronize_session=False)
            )
            done: bool = result.rowcount == 1  # type: ignore[attr-defined]
            row = session.get(SilenceRow, silence_id)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot expire silence {silence_id}: {exc}") from exc
    if row is None:
        raise UsageError(f"there is no silence with id {silence_id} "
                         "(`silence list --all` shows them all)")
    silence = _to_silence(row)
    if not done:
        how = "was expired" if silence.expired_at is not None else "ended"
        raise UsageError(f"silence {silence_id} has already ended: it {how} at "
                         f"{format_time(silence.until)}")
    return silence


def known_line(sessions: sessionmaker[Session], phone_or_id: str) -> bool:
    """Whether any account has ever seen a line with this phone number or id."""
    try:
        with sessions() as session:
            return session.scalars(
                select(Line.line_id).where(or_(Line.phone_number == phone_or_id,
                                               Line.line_id == phone_or_id)).limit(1)
            ).first() is not None
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read lines: {exc}") from exc


def _to_silence(row: SilenceRow) -> Silence:
    return Silence(id=row.id, kind=MatcherKind(row.matcher_kind), value=row.matcher_value,
                   reason=row.reason, created_by=row.created_by, created_at=row.created_at,
                   starts_at=row.starts_at, ends_at=row.ends_at, expired_at=row.expired_at,
                   expired_by=row.expired_by)
