"""Leases in the database: who polls which account, who runs a periodic job, who is alive.

A lease row names its ``holder`` until ``expires_at``; a holder that dies simply stops
renewing, and the row becomes free for anyone once it has expired. Every acquisition bumps
``generation``, the fencing token: a write made under a lease checks, in its own
transaction, that the lease still has the holder and generation it was acquired with
(``check_fence``). A holder that was paused or partitioned past its expiry, and meanwhile
replaced, therefore has its writes refused instead of putting stale state over newer state.

Concurrency (PostgreSQL): free leases are taken with ``SELECT ... FOR UPDATE SKIP LOCKED``,
so replicas acquiring at the same moment skip each other's rows instead of queueing; the
fence check takes ``FOR SHARE`` on the lease row, so a takeover (an UPDATE of that row)
waits until the write it would fence has committed or rolled back. Time is the database's
own clock (``clock_timestamp()``), so replica clocks need not agree. On SQLite (one process,
see monitor/store/solo.py) the same statements run without row locks.

Every function is one short transaction and raises ``StoreError`` (``LeaseLost`` for a
refused fence) on failure.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, insert, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import LeaseLost, StoreError
from monitor.store.schema import Lease, Replica

# A replica row is deleted after this many lease times without a heartbeat.
_FORGET_REPLICA_AFTER = 20


def account_lease(account: str) -> str:
    return f"account:{account}"


def job_lease(job: str) -> str:
    return f"job:{job}"


@dataclass(frozen=True, slots=True)
class Fence:
    """What a write under a lease must still find in the lease row to be allowed."""

    lease: str
    holder: str
    generation: int


@dataclass(frozen=True, slots=True)
class Grant:
    """A lease acquired or renewed: valid until ``expires_at`` (database time)."""

    fence: Fence
    expires_at: datetime


def db_now(session: Session) -> datetime:
    """The database's clock on PostgreSQL (shared by every replica); ours on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        moment: datetime = session.execute(text("SELECT clock_timestamp()")).scalar_one()
        return moment.astimezone(UTC)
    return datetime.now(UTC)


def check_fence(session: Session, fence: Fence) -> None:
    """Inside a write transaction: raise LeaseLost unless ``fence`` still holds.

    Holds a share lock on the lease row until the caller commits, so a replica taking the
    lease over waits for this transaction instead of slipping in under it.
    """
    found = session.execute(
        select(Lease.generation)
        .where(Lease.name == fence.lease, Lease.holder == fence.holder,
               Lease.generation == fence.generation)
        .with_for_update(read=True)
    ).first()
    if found is None:
        raise LeaseLost(f"lease {fence.lease} (generation {fence.generation}) was taken over "
                        "by another replica; this write was refused")


def ensure(sessions: sessionmaker[Session], names: Iterable[str]) -> None:
    """Create the lease rows that do not exist yet (free, generation 0)."""
    rows = [{"name": n, "generation": 0} for n in names]
    if not rows:
        return
    with _unit(sessions, "cannot create lease rows") as session:
        dialect = session.get_bind().dialect.name
        maker = pg_insert if dialect == "postgresql" else sqlite_insert
        session.execute(maker(Lease).on_conflict_do_nothing(index_elements=["name"]), rows)


def heartbeat(sessions: sessionmaker[Session], *, replica: str, host: str, pid: int,
              started_at: datetime, ttl: timedelta) -> int:
    """Record that ``replica`` is alive; return how many replicas are (itself included)."""
    with _unit(sessions, "cannot record the replica heartbeat") as session:
        now = db_now(session)
        updated = session.execute(
            update(Replica).where(Replica.replica == replica).values(heartbeat_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if not updated:
            session.execute(insert(Replica).values(replica=replica, host=host, pid=pid,
                                                   started_at=started_at, heartbeat_at=now))
        session.execute(delete(Replica).where(
            Replica.heartbeat_at < now - ttl * _FORGET_REPLICA_AFTER))
        live: int = session.scalar(select(func.count()).select_from(Replica)
                                   .where(Replica.heartbeat_at > now - ttl)) or 0
        return live


def leave(sessions: sessionmaker[Session], *, replica: str) -> None:
    """Forget ``replica``'s heartbeat (a clean exit), so the others rebalance at once."""
    with _unit(sessions, "cannot remove the replica heartbeat") as session:
        session.execute(delete(Replica).where(Replica.replica == replica))


def acquire(sessions: sessionmaker[Session], names: Collection[str], *, holder: str,
            limit: int, ttl: timedelta) -> list[Grant]:
    """Take up to ``limit`` of ``names`` that are free or expired; return what was taken."""
    if limit <= 0 or not names:
        return []
    with _unit(sessions, "cannot acquire leases") as session:
        now = db_now(session)
        free = session.scalars(
            select(Lease.name)
            .where(Lease.name.in_(names),
                   or_(Lease.holder.is_(None), Lease.expires_at.is_(None),
                       Lease.expires_at < now))
            .order_by(Lease.name)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if not free:
            return []
        rows = session.execute(
            update(Lease).where(Lease.name.in_(free))
            .values(holder=holder, generation=Lease.generation + 1, expires_at=now + ttl,
                    acquired_at=now)
            .returning(Lease.name, Lease.generation)
            .execution_options(synchronize_session=False)
        ).all()
        return [Grant(Fence(name, holder, generation), now + ttl) for name, generation in rows]


def renew(sessions: sessionmaker[Session], fences: Collection[Fence], *, ttl: timedelta
          ) -> list[Grant]:
    """Extend the leases still held as ``fences`` say; the missing ones were taken over."""
    if not fences:
        return []
    holder = next(iter(fences)).holder
    with _unit(sessions, "cannot renew leases") as session:
        now = db_now(session)
        rows = session.execute(
            update(Lease)
            .where(tuple_(Lease.name, Lease.generation).in_(
                       [(f.lease, f.generation) for f in fences]),
                   Lease.holder == holder)
            .values(expires_at=now + ttl)
            .returning(Lease.name, Lease.generation)
            .execution_options(synchronize_session=False)
        ).all()
        return [Grant(Fence(name, holder, generation), now + ttl) for name, generation in rows]


def free_all(sessions: sessionmaker[Session]) -> None:
    """Free every account lease, for a daemon that holds the SQLite one-daemon lock: no
    other process can hold them, so a restart after kill -9 need not wait them out."""
    with _unit(sessions, "cannot free leases") as session:
        session.execute(update(Lease).where(Lease.name.like("account:%"))
                        .values(holder=None, expires_at=None)
                        .execution_options(synchronize_session=False))


def release(sessions: sessionmaker[Session], fences: Collection[Fence], *,
            done_key: str | None = None) -> None:
    """Give leases back at once (a clean exit, a rebalance, a finished job).

    ``done_key`` records a run-once job's completed slot on its lease row.
    """
    for fence in fences:
        with _unit(sessions, "cannot release a lease") as session:
            values: dict[str, object] = {"holder": None, "expires_at": None}
            if done_key is not None:
                values["done_key"] = done_key
            session.execute(
                update(Lease).where(Lease.name == fence.lease, Lease.holder == fence.holder,
                                    Lease.generation == fence.generation)
                .values(values).execution_options(synchronize_session=False))


def try_once(sessions: sessionmaker[Session], name: str, *, holder: str, key: str | None,
             ttl: timedelta) -> Grant | None:
    """Take lease ``name`` unless it is held, or its job already completed slot ``key``."""
    ensure(sessions, [name])
    with _unit(sessions, "cannot acquire a job lease") as session:
        now = db_now(session)
        conditions = [Lease.name == name,
                      or_(Lease.holder.is_(None), Lease.expires_at.is_(None),
                          Lease.expires_at < now)]
        if key is not None:
            conditions.append(or_(Lease.done_key.is_(None), Lease.done_key != key))
        row = session.execute(
            update(Lease).where(*conditions)
            .values(holder=holder, generation=Lease.generation + 1, expires_at=now + ttl,
                    acquired_at=now)
            .returning(Lease.generation)
            .execution_options(synchronize_session=False)
        ).first()
        return None if row is None else Grant(Fence(name, holder, row[0]), now + ttl)


def live_replicas(sessions: sessionmaker[Session], *, ttl: timedelta) -> list[str]:
    """The replicas that sent a heartbeat within ``ttl`` (by the database's clock)."""
    with _unit(sessions, "cannot read the replicas") as session:
        now = db_now(session)
        return list(session.scalars(select(Replica.replica)
                                    .where(Replica.heartbeat_at > now - ttl)
                                    .order_by(Replica.replica)))


def holders(sessions: sessionmaker[Session]) -> list[tuple[str, str | None, int,
                                                           datetime | None]]:
    """Every lease as (name, holder, generation, expires_at), for status and tests."""
    with _unit(sessions, "cannot read leases") as session:
        return [tuple(r) for r in session.execute(  # type: ignore[misc]
            select(Lease.name, Lease.holder, Lease.generation, Lease.expires_at)
            .order_by(Lease.name)).all()]


@contextmanager
def _unit(sessions: sessionmaker[Session], what: str) -> Iterator[Session]:
    """One transaction; a SQLAlchemy error becomes StoreError, nothing of it committed."""
    try:
        with sessions.begin() as session:
            yield session
    except SQLAlchemyError as exc:
        raise StoreError(f"{what}: {exc}") from exc
