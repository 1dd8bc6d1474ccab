"""Both stores wait out SQLite's write lock held elsewhere the same way, and give up the same way."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from app.deliveries.records import NewDelivery
from app.deliveries.stores import sqlite_path, store_for
from app.deliveries.stores.sql import SQLDeliveryStore
from app.deliveries.stores.sqlite import LockBusy, SQLiteDeliveryStore, lock_busy_when_locked, retry_while_busy


def _delivery(delivery_id: str) -> NewDelivery:
    return NewDelivery(id=delivery_id, event="issues", action="opened", installation_id=None, body=b"{}")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("store_kind", [SQLiteDeliveryStore, SQLDeliveryStore])
def test_a_write_lock_held_elsewhere_is_waited_out_then_the_delivery_stored(database_url, engine, store_kind):
    store = SQLiteDeliveryStore(sqlite_path(database_url)) if store_kind is SQLiteDeliveryStore else SQLDeliveryStore(engine)
    # Given another process holding SQLite's write lock for 200 ms
    other = sqlite3.connect(sqlite_path(database_url), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.2, lambda: other.execute("COMMIT")).start()
    try:
        # When a delivery is inserted meanwhile
        started = time.monotonic()
        new = store.insert([_delivery("waited")])
        waited = time.monotonic() - started
    finally:
        store.close()
        time.sleep(0.25)
        other.close()

    # Then it is stored once the lock is free, well before SQLite's own busy handler would have woken
    assert new == {"waited"}
    assert 0.15 < waited < 1


def test_a_lock_that_stays_busy_ends_as_database_is_locked():
    def always_busy():
        raise LockBusy()

    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        retry_while_busy(always_busy, timeout=0.01)


def test_other_errors_are_not_retried():
    calls = []

    def broken():
        calls.append(1)
        with lock_busy_when_locked():
            raise sqlite3.OperationalError("no such table: deliveries")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        retry_while_busy(broken, timeout=1)
    assert calls == [1]


@pytest.mark.parametrize(("url", "path"), [
    ("sqlite:////data/draftsmith.db", "/data/draftsmith.db"),
    ("sqlite:///relative.db?timeout=5", "relative.db"),
    ("sqlite:///:memory:", None),
    ("sqlite://", None),
    ("postgresql://db/draftsmith", None),
])
def test_only_a_sqlite_file_gets_the_sqlite_store(url, path):
    assert sqlite_path(url) == path


def test_any_other_database_gets_the_sql_store_with_its_engine_built_on_demand():
    engine = object()
    store = store_for("postgresql://db/draftsmith", lambda: engine)
    assert isinstance(store, SQLDeliveryStore) and store.engine is engine
