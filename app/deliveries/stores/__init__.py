"""Where deliveries are written: SQLite through sqlite3 (web processes), any database through SQLAlchemy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from app.deliveries.records import NewDelivery


class DeliveryStore(Protocol):
    def insert(self, deliveries: Sequence[NewDelivery]) -> set[str]:
        """Insert in one transaction, ignoring ids already stored; returns the ids that were new."""

    def mark_not_enqueued(self, ids: Sequence[str]) -> None: ...

    def close(self) -> None: ...


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
