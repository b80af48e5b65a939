"""Engines and sessions. SQLite gets WAL, foreign keys and a busy timeout on connect.

A read-only engine (``read_only=True``) is what the commands that only look use
(``status``, ``history``, ...): SQLite opens the file with ``mode=ro``, so a missing file
is an error instead of a new empty database; PostgreSQL sessions start read-only, so a bug
in a read path cannot write beside a running daemon.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.core.secret import is_credential_name


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if read_only and path is not None:
            return _read_only_sqlite(parsed)
        if path is not None and "uri" not in parsed.query:  # a URI filename is SQLite's
            _create_private(path)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = {"options": "-c default_transaction_read_only=on"} if read_only else {}
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5,
                         connect_args=connect_args)


def sqlite_path(url: str | URL) -> Path | None:
    """The file of a SQLite URL; None for another database or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _create_private(path: Path) -> None:
    """Create a missing SQLite file empty with mode 0600, before SQLite would create it with
    the umask (often world-readable); SQLite gives its -wal and -shm files the database's
    mode. An existing file is left as it is; a folder that is missing or cannot be written
    is left for SQLite to report when it connects."""
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _read_only_sqlite(parsed: URL) -> Engine:
    path = Path(parsed.database or "").resolve()

    def connect() -> sqlite3.Connection:
        # mode=ro: never create the file; writes fail. The journal mode stays as the daemon
        # set it (WAL), which a reader need not (and cannot) change.
        return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=30,
                               check_same_thread=False)

    engine = create_engine("sqlite://", creator=connect)
    event.listen(engine, "connect", _sqlite_reader_pragmas)
    return engine


def _sqlite_reader_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def ping(engine: Engine) -> None:
    """One round trip to the database (for /readyz); raises SQLAlchemyError if it fails."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def safe_url(url: str) -> str:
    """The database URL with any password masked, for logs and errors: the one in the
    userinfo and any query parameter named like a credential."""
    parsed = make_url(url)
    rendered = parsed.set(query={}).render_as_string(hide_password=True)
    if not parsed.query:
        return rendered
    pairs = [(name, "***" if is_credential_name(name) else value)
             for name, values in parsed.query.items()
             for value in ((values,) if isinstance(values, str) else values)]
    return f"{rendered}?{urlencode(pairs, safe='*/:,')}"


def describe_failure(url: str | URL, exc: SQLAlchemyError) -> str:
    """Why the database at ``url`` could not be used, with where it is: the SQLite file's
    path, or PostgreSQL's host, port and database name (never the password)."""
    parsed = make_url(url)
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    reason = " ".join(str(cause).split()) or type(cause).__name__
    path = sqlite_path(url)
    if path is not None:
        return f"cannot use the SQLite database {path.resolve()}: {reason}"
    if parsed.get_backend_name() == "sqlite":
        return f"cannot use the in-memory SQLite database: {reason}"
    where = (f"database {parsed.database!r} on {parsed.host or 'localhost'}:"
             f"{parsed.port or 5432}")
    if "does not exist" in reason and f'"{parsed.database}"' in reason:
        return f"{where} does not exist (create it, or fix [database] url)"
    return f"cannot use {where}: {reason}"
