"""The SQLite store: deliveries written through one plain sqlite3 connection; and the one way both stores
retry SQLite's write lock (at once and briefly, never in SQLite's own busy handler)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from app.deliveries.records import RECEIVED, NewDelivery, pack

T = TypeVar("T")

# How long a writer waits between tries while another connection holds SQLite's write lock.
BUSY_PAUSE_SECONDS = 0.0005


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


def sqlite_timestamp(moment: datetime) -> str:
    # How SQLAlchemy stores a UTC DateTime in SQLite, so the ORM and the sweeper's comparisons read ours.
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class SQLiteDeliveryStore:
    """Writes deliveries through one plain sqlite3 connection of its own (no SQLAlchemy in the hot path).

    `try_insert` raises LockBusy at once while another connection holds the write lock, for the
    caller to retry. synchronous=NORMAL in WAL mode: a commit survives the process crashing (the WAL
    is in the OS page cache); only a power loss or kernel crash can take the last few back.

    It never checkpoints on its commits (a checkpoint ends in an fsync); the workers' connections
    do. A thread here checkpoints only once the WAL outgrows `checkpoint_above_bytes`, as it does
    while no worker writes.
    """

    INSERT = (
        "INSERT INTO deliveries (id, event, action, installation_id, received_at, status, attempts, enqueued_at,"
        " payload_id) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT (id) DO NOTHING"
    )
    # Only for a delivery the row insert found new: a redelivery's body is already stored.
    INSERT_PAYLOAD = "INSERT INTO delivery_payloads (id, payload_lz4) VALUES (?, ?)"
    # The transaction holds SQLite's write lock from BEGIN IMMEDIATE, so nobody else can take this
    # number before our insert does.
    NEXT_PAYLOAD_ID = "SELECT coalesce(max(id), 0) + 1 FROM delivery_payloads"

    def __init__(self, path: str, *, lock_timeout: float = 30.0, checkpoint_interval: float = 1.0,
                 checkpoint_above_bytes: int = 256 * 1024 * 1024) -> None:
        self.path = path
        self.lock_timeout = lock_timeout
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=0", "wal_autocheckpoint=0"):
            self.conn.execute(f"PRAGMA {pragma}")
        # Commits (on the event loop) and the enqueuer thread's rare mark_not_enqueued share the connection.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_when_large, args=(checkpoint_interval, checkpoint_above_bytes),
            name="wal-checkpoint", daemon=True,
        )
        self._checkpointer.start()

    def _checkpoint_when_large(self, interval: float, above_bytes: int) -> None:
        conn = None
        try:
            while not self._stop.wait(interval):
                try:
                    if os.path.getsize(self.path + "-wal") <= above_bytes:
                        continue
                except OSError:
                    continue
                try:
                    conn = conn or sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # blocks no reader or writer
                except sqlite3.Error:
                    pass  # another process is checkpointing; the next round catches up
        finally:
            if conn is not None:
                conn.close()

    def try_insert(self, deliveries: Sequence[NewDelivery]) -> set[str]:
        """Insert in one transaction; the ids that were new. Raises LockBusy at once, without waiting,
        while another connection holds the write lock."""
        with self._lock:
            with lock_busy_when_locked():
                # IMMEDIATE takes the write lock up front: busy then means "retry", never a half-done transaction.
                self.conn.execute("BEGIN IMMEDIATE")
            try:
                new = self._insert_rows(deliveries)
                self.conn.execute("COMMIT")
                return new
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    def insert(self, deliveries: Sequence[NewDelivery]) -> set[str]:
        return retry_while_busy(lambda: self.try_insert(deliveries), self.lock_timeout)

    def _insert_rows(self, deliveries: Sequence[NewDelivery]) -> set[str]:
        # Set enqueued_at optimistically: we enqueue right after commit and clear it only if that
        # fails, so the common path costs one write. The sweeper re-enqueues anything left behind.
        now = sqlite_timestamp(datetime.now(UTC))
        new: set[str] = set()
        execute = self.conn.execute
        payload_id = execute(self.NEXT_PAYLOAD_ID).fetchone()[0]
        for d in deliveries:
            cursor = execute(self.INSERT, (d.id, d.event, d.action, d.installation_id, now, RECEIVED, now, payload_id))
            if cursor.rowcount == 1:  # 0: already stored (a redelivery, or the same id twice in this batch)
                execute(self.INSERT_PAYLOAD, (payload_id, pack(d.body)))
                payload_id += 1
                new.add(d.id)
        return new

    def mark_not_enqueued(self, ids: Sequence[str]) -> None:
        def update() -> None:
            with self._lock, lock_busy_when_locked():
                self.conn.executemany("UPDATE deliveries SET enqueued_at = NULL WHERE id = ?", [(i,) for i in ids])

        retry_while_busy(update, self.lock_timeout)

    def close(self) -> None:
        self._stop.set()
        self._checkpointer.join(5)
        self.conn.close()
