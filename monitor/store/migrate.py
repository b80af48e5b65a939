"""Migrate-at-start: Alembic upgrade to head, under a lock, with a SQLite backup first.

Migrations ship inside the wheel as ``monitor/migrations`` (hatch force-include); in a
source checkout they are the top-level ``migrations/`` folder.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import StoreError

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


def upgrade(engine: Engine) -> str | None:
    """Bring the database to the newest revision. Returns the revision it was at before.

    Raises StoreError when the database cannot be reached or a migration fails.
    """
    head = head_revision()
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                # Replicas starting together must not run the same migration twice.
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()
            try:
                before = current_revision(conn)
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
        raise StoreError(f"database migration failed: {type(exc).__name__}: {exc.orig or exc}"
                         if hasattr(exc, "orig") else f"database migration failed: {exc}"
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
        log.info("backed up %s to %s before migrating", source, target)
