"""`draftsmith migrate` creates the schema on an empty database, SQLite or PostgreSQL, and can run again."""

from __future__ import annotations

import subprocess

import pytest
from sqlalchemy import inspect

from app.db import make_engine
from app.models import SQLModel
from tests.cli.conftest import DRAFTSMITH, clean_environment
from tests.support.databases import _fresh_postgres_url


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return _fresh_postgres_url(request.getfixturevalue("postgres_server"))


def run_migrate(tmp_path, database_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DRAFTSMITH, "migrate"],
        cwd=tmp_path,
        env=clean_environment(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_migrate_creates_every_table(tmp_path, empty_database_url):
    result = run_migrate(tmp_path, empty_database_url)
    assert result.returncode == 0, result.stderr
    assert "database at head" in result.stdout

    engine = make_engine(empty_database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(SQLModel.metadata.tables) <= tables
    assert "alembic_version" in tables

    again = run_migrate(tmp_path, empty_database_url)
    assert again.returncode == 0, again.stderr

