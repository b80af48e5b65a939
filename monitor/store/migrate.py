"""Migrate-at-start: Alembic upgrade to head, under a lock, with a SQLite backup first.

Migrations ship inside the wheel as ``monitor/migrations`` (hatch force-include); in a
source checkout they are the top-level ``migrations/`` folder.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from monitor import __version__
from monitor.errors import SchemaMismatch, StoreError
from monitor.store.engine import describe_failure

log = logging.getLogger(__name__)

# Any constant shared by all replicas; "linqrep" in ASCII.
_PG_MIGRATION_LOCK = 0x6C696E71726570


def migrations_dir() -> Path:
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "migrations", package.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise StoreError("the Alembic migrations are missing from this installation")


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def is_known(revision: str) -> bool:
    """Whether this version's migrations include ``revision`` (else a newer version wrote it)."""
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def too_new(revision: str, where: str) -> SchemaMismatch:
    return SchemaMismatch(
        f"{where} is at schema revision {revision}, which this reputation-monitor "
        f"({__version__}) does not know: a newer version migrated it. Run that newer version "
        "(a database cannot be migrated back); nothing was changed")


def check_readable(connection: Connection, where: str) -> None:
    """Raise SchemaMismatch unless the database is at this version's revision: reading
    an empty, older or newer schema would show wrong or no data."""
    head, current = head_revision(), current_revision(connection)
    if current == head:
        return
    if current is None:
        raise SchemaMismatch(
            f"{where} holds no monitor data yet: the daemon has not run with this config "
            "(start `reputation-monitor run`, or check [database] url)")
    if not is_known(current):
        raise too_new(current, where)
    raise SchemaMismatch(
        f"{where} is at schema revision {current}, older than this version's {head}: "
        "start the daemon of this version (it migrates at start) or run "
        "`reputation-monitor db upgrade` with the daemon stopped")


def upgrade(engine: Engine, *, where: str = "the database") -> str | None:
    """Bring the database to the newest revision. Returns the revision it was at before.

    Raises SchemaMismatch, changing nothing (no backup either), when a newer version
    migrated the database; StoreError when it cannot be reached or a migration fails.
    """
    head = head_revision()
    try:
        conn = engine.connect()
    except SQLAlchemyError as exc:
        raise StoreError(describe_failure(engine.url, exc)) from exc
    try:
        with conn:
            if engine.dialect.name == "postgresql":
                # Replicas starting together must not run the same migration twice.
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()
            try:
                before = current_revision(conn)
                if before is not None and before != head and not is_known(before):
                    raise too_new(before, where)
                if before != head:
                    if engine.dialect.name == "sqlite" and before is not None:
                        _backup_sqlite(engine, before)
                    log.info("migrating database from %s to %s", before or "empty", head)
                    command.upgrade(alembic_config(conn), "head")
                    conn.commit()
            finally:
                if engine.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"),
                                 {"k": _PG_MIGRATION_LOCK})
                    conn.commit()
    except SQLAlchemyError as exc:
        raise StoreError(f"migrating {where} failed: {describe_failure(engine.url, exc)}"
                         ) from exc
    return before


def _backup_sqlite(engine: Engine, revision: str) -> None:
    database = engine.url.database
    if not database or database == ":memory:":
        return
    source = Path(database)
    if source.exists() and source.stat().st_size > 0:
        target = source.with_name(f"{source.name}.{revision}.bak")
        shutil.copy2(source, target)
        # copy2 copies the source's mode, which may predate the 0600 databases: the copy
        # holds the same data and is kept by owner alone.
        os.chmod(target, 0o600)
        log.info("backed up %s to %s before migrating", source, target)
