"""Where deliveries are written: SQLite through sqlite3 (web processes), any database through SQLAlchemy.

Also the one way both retry SQLite's write lock: at once and briefly, never in SQLite's own busy handler.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar

from app.deliveries.records import NewDelivery

T = TypeVar("T")

# How long a writer waits between tries while another connection holds SQLite's write lock.
BUSY_PAUSE_SECONDS = 0.0005


class DeliveryStore(Protocol):
    def insert(self, deliveries: Sequence[NewDelivery]) -> set[str]:
        """Insert in one transaction, ignoring ids already stored; returns the ids that were new."""

    def mark_not_enqueued(self, ids: Sequence[str]) -> None: ...

    def close(self) -> None: ...


class LockBusy(Exception):
    """Another connection holds SQLite's write lock; try again shortly."""


@contextlib.contextmanager
def lock_busy_when_locked() -> Iterator[None]:
    """Turn SQLite's "database is locked" (from sqlite3, or wrapped by SQLAlchemy) into LockBusy."""
    try:
        yield
    except Exception as exc:
        cause = getattr(exc, "orig", exc)  # SQLAlchemy keeps the driver's error as .orig
        if isinstance(cause, sqlite3.OperationalError) and ("locked" in str(cause) or "busy" in str(cause)):
            raise LockBusy() from None
        raise


def retry_while_busy(attempt: Callable[[], T], timeout: float) -> T:
    """`attempt()` until it does not raise LockBusy; "database is locked" after `timeout` seconds.

    SQLite's own busy handler backs off to 100 ms sleeps, which turns a lock held for a millisecond
    into a p99 of hundreds, so connections set busy_timeout=0 and retry here instead.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return attempt()
        except LockBusy:
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError("database is locked") from None
            time.sleep(BUSY_PAUSE_SECONDS)


def sqlite_path(database_url: str) -> str | None:
    """The file behind a sqlite:/// URL (None for other databases and in-memory SQLite)."""
    if not database_url.startswith("sqlite"):
        return None
    path = database_url.split("sqlite:///", 1)[-1].split("?", 1)[0]
    return None if not path or path == ":memory:" or database_url == path else path


def store_for(database_url: str, engine: Callable[[], object]) -> DeliveryStore:
    """The store for this database: plain sqlite3 for a SQLite file, else the (lazily built) SQLAlchemy engine."""
    path = sqlite_path(database_url)
    if path:
        from app.deliveries.stores.sqlite import SQLiteDeliveryStore

        return SQLiteDeliveryStore(path)
    from app.deliveries.stores.sql import SQLDeliveryStore  # SQLAlchemy: only where the database needs it

    return SQLDeliveryStore(engine())
