"""Shared fixtures: databases (SQLite and a real PostgreSQL), the simulator on a real socket,
a local HTTP receiver for Apprise's json:// notifier, config files, the daemon subprocess."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor.simulator import Simulator, SimulatorServer
from monitor.store import migrate
from monitor.store.engine import make_engine, make_sessionmaker
from tests.support.receiver import Receiver

PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES") == "1"


def _postgres_reason() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN}: {str(exc).strip()[:200]}"


_PG_UNAVAILABLE = _postgres_reason()


def require_postgres() -> None:
    if _PG_UNAVAILABLE is None:
        return
    if REQUIRE_POSTGRES:
        pytest.fail(f"REQUIRE_POSTGRES=1 but {_PG_UNAVAILABLE}")
    pytest.skip(_PG_UNAVAILABLE)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    require_postgres()
    name = f"rm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


BOTH_DATABASES = "both_databases"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{BOTH_DATABASES}: run each test that uses database_url on SQLite and "
        "on PostgreSQL (what touches SQL); the rest run once, on SQLite")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``database_url`` is SQLite, and PostgreSQL too for tests marked both_databases.

    What touches SQL (the store, the outbox, leases, migrations, retention, webhook
    events, one end-to-end path and the kill -9 chaos) runs on both; a test of behaviour
    above the store runs once: the second run would prove nothing the first did not.
    """
    if "database_url" in metafunc.fixturenames:
        both = metafunc.definition.get_closest_marker(BOTH_DATABASES) is not None
        metafunc.parametrize("database_url", ["sqlite", "postgresql"] if both else ["sqlite"],
                             indirect=True)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database: SQLite, or PostgreSQL (see pytest_generate_tests)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'monitor.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated database (SQLite, and PostgreSQL where marked) and its sessions."""
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def sim() -> Simulator:
    return Simulator(token="sim-token")


@pytest.fixture
def sim_server(sim: Simulator) -> Iterator[SimulatorServer]:
    with SimulatorServer(sim) as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r
