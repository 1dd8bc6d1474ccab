import sqlite3
from datetime import UTC, datetime, timedelta

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel

import app.models  # noqa: F401
from app.db import SQLITE_PAGE_SIZE, make_engine
from app.deliveries.records import unpack
from app.migrate import alembic_config, upgrade


def test_migrations_build_exactly_the_schema_the_models_describe(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_compressing_and_numbering_stored_bodies_keeps_every_body_byte_for_byte_and_undoes_cleanly(empty_database_url):
    engine = make_engine(empty_database_url.replace("postgresql://", "postgresql+psycopg://"))
    config = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    # Given a delivery log written before bodies were compressed and numbered: more rows than one
    # conversion chunk, bodies with non-ASCII text in them, and ids in the opposite order to arrival
    upgrade(engine, "0002")
    bodies = {f"d{i:04d}": '{"action":"opened","title":"caf\u00e9 \u2603 #%d"}' % i for i in range(1203)}
    bodies["long"] = '{"action":"edited","body":"%s"}' % ("a comment that goes on " * 600)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    arrived = {i: start + timedelta(seconds=len(bodies) - n) for n, i in enumerate(bodies)}
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO deliveries (id, event, received_at, status, attempts)"
                          " VALUES (:id, 'issues', :at, 'processed', 1)"),
                     [{"id": i, "at": at} for i, at in arrived.items()])
        conn.execute(text("INSERT INTO delivery_payloads (id, payload) VALUES (:id, :payload)"),
                     [{"id": i, "payload": body} for i, body in bodies.items()])

    # When the log is migrated to the current schema
    upgrade(engine)

    # Then every delivery's body is stored compressed and unpacks to exactly what was there
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT d.id, p.id, p.payload_lz4 FROM deliveries d"
                                 " JOIN delivery_payloads p ON p.id = d.payload_id")).all()
    stored = {delivery_id: blob for delivery_id, _, blob in rows}
    assert {i: unpack(blob).decode("utf-8") for i, blob in stored.items()} == bodies
    assert len(stored["long"]) < len(bodies["long"]) / 10
    # numbered in arrival order, as new bodies are
    numbers = {delivery_id: number for delivery_id, number, _ in rows}
    assert sorted(bodies, key=numbers.get) == sorted(bodies, key=arrived.get)

    # And going back restores the text column, body for body
    command.downgrade(config, "0002")
    with engine.connect() as conn:
        assert dict(conn.execute(text("SELECT id, payload FROM delivery_payloads")).all()) == bodies
    engine.dispose()


def test_a_new_sqlite_database_is_created_with_small_pages(tmp_path):
    # When `draftsmith migrate` (or serve) creates the embedded database
    engine = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    upgrade(engine)
    engine.dispose()

    # Then it has the small pages that cut what each recorded delivery writes, and is in WAL mode
    conn = sqlite3.connect(tmp_path / "new.db")
    assert conn.execute("PRAGMA page_size").fetchone()[0] == SQLITE_PAGE_SIZE == 2048
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
