"""Group commit of verified deliveries: one writer thread per web process turns concurrent requests into one transaction."""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from app.logs import get_logger

# app.deliveries.RECEIVED; not imported from there, which would load SQLAlchemy into every web process.
RECEIVED = "received"

log = get_logger(component="recorder")


@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: str
    event: str
    action: str | None
    installation_id: int | None
    payload: str


@dataclass(frozen=True, slots=True)
class Recorded:
    """What happened to one delivery: `new` is False for a redelivery we already hold."""

    new: bool
    enqueued: bool


class DeliveryStore(Protocol):
    def insert(self, deliveries: Sequence[NewDelivery]) -> set[str]:
        """Insert in one transaction, ignoring ids already stored; returns the ids that were new."""

    def mark_not_enqueued(self, ids: Sequence[str]) -> None: ...

    def close(self) -> None: ...


def _sqlite_timestamp(moment: datetime) -> str:
    # How SQLAlchemy stores a UTC DateTime in SQLite, so the ORM and the sweeper's comparisons read ours.
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class SQLiteDeliveryStore:
    """Writes deliveries through one plain sqlite3 connection of its own (no SQLAlchemy in the hot path).

    The connection never waits in SQLite's busy handler, which backs off to 100 ms sleeps: while
    another process (the other web process, a worker) holds the single write lock, it retries every
    ~0.5 ms instead. synchronous=NORMAL in WAL mode: a commit survives the process crashing the
    instant after (the WAL is in the OS page cache); only a power loss or kernel crash can take
    the last few commits back. It never checkpoints in a commit: copying the WAL into the database
    file ends in an fsync, which made a commit cost ~0.3 ms a row instead of ~0.05. A checkpoint
    thread of its own does it every `checkpoint_interval` seconds (PASSIVE, so it blocks no reader
    or writer), which also bounds the WAL while no worker runs.
    """

    INSERT = (
        "INSERT INTO deliveries (id, event, action, installation_id, received_at, payload, status, attempts,"
        " enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (id) DO NOTHING"
    )

    def __init__(self, path: str, *, lock_timeout: float = 30.0, checkpoint_interval: float = 1.0) -> None:
        self.path = path
        self.lock_timeout = lock_timeout
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=0", "wal_autocheckpoint=0"):
            self.conn.execute(f"PRAGMA {pragma}")
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_every, args=(checkpoint_interval,), name="wal-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_every(self, interval: float) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    pass  # another process is checkpointing; the next round catches up
        finally:
            conn.close()

    def _write(self, work: Callable[[sqlite3.Connection], object]):
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                # IMMEDIATE takes the write lock up front: a busy answer then means "retry", never a
                # half-done transaction.
                self.conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.0005)
        try:
            result = work(self.conn)
            self.conn.execute("COMMIT")
            return result
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def insert(self, deliveries: Sequence[NewDelivery]) -> set[str]:
        # Set enqueued_at optimistically: we enqueue right after commit and clear it only if that
        # fails, so the common path costs one write. The sweeper re-enqueues anything left behind.
        now = _sqlite_timestamp(datetime.now(UTC))

        def work(conn: sqlite3.Connection) -> set[str]:
            new: set[str] = set()
            execute = conn.execute
            for d in deliveries:
                cursor = execute(self.INSERT, (d.id, d.event, d.action, d.installation_id, now, d.payload, RECEIVED, now))
                if cursor.rowcount == 1:  # 0: already stored (a redelivery, or the same id twice in this batch)
                    new.add(d.id)
            return new

        return self._write(work)

    def mark_not_enqueued(self, ids: Sequence[str]) -> None:
        self._write(lambda conn: conn.executemany("UPDATE deliveries SET enqueued_at = NULL WHERE id = ?",
                                                  [(i,) for i in ids]))

    def close(self) -> None:
        self._stop.set()
        self._checkpointer.join(5)
        self.conn.close()


class EngineDeliveryStore:
    """Writes deliveries through a SQLAlchemy engine (PostgreSQL, or SQLite in memory)."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def insert(self, deliveries: Sequence[NewDelivery]) -> set[str]:
        from app.deliveries import record_batch

        return record_batch(self.engine, deliveries)

    def mark_not_enqueued(self, ids: Sequence[str]) -> None:
        from app.deliveries import mark_not_enqueued

        mark_not_enqueued(self.engine, ids)

    def close(self) -> None:
        pass


def sqlite_path(database_url: str) -> str | None:
    """The file behind a sqlite:/// URL (None for other databases and in-memory SQLite)."""
    if not database_url.startswith("sqlite"):
        return None
    path = database_url.split("sqlite:///", 1)[-1].split("?", 1)[0]
    return None if not path or path == ":memory:" or database_url == path else path


def store_for(database_url: str, engine: Callable[[], object]) -> DeliveryStore:
    """The store for this database: plain sqlite3 for a SQLite file, else the (lazily built) SQLAlchemy engine."""
    path = sqlite_path(database_url)
    return SQLiteDeliveryStore(path) if path else EngineDeliveryStore(engine())


class DeliveryRecorder:
    """Group commit: one writer thread turns concurrently arriving deliveries into one transaction.

    Each request hands its delivery over and awaits its own future. While one batch commits, the
    next requests queue up and go together in the following one, so under load the cost of a
    commit (an fsync on PostgreSQL, a WAL append on SQLite) is shared by many deliveries. After the
    commit, the new ones are enqueued in one pipelined Redis round trip, then every future resolves
    (so a 202 always means recorded, and enqueued unless Redis failed, in which case the delivery is
    marked for the sweeper first).
    """

    def __init__(self, store: DeliveryStore, enqueue: Callable[[Sequence[str]], None], *, max_batch: int = 256) -> None:
        self.store = store
        self.enqueue = enqueue
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> DeliveryRecorder:
        self._thread = threading.Thread(target=self._run, name="delivery-recorder", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None
        self.store.close()

    def record(self, delivery: NewDelivery) -> asyncio.Future:
        """A future resolved with Recorded once the delivery is committed (and enqueued)."""
        if self._thread is None or self._closed:
            raise RuntimeError("delivery recorder is not running")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((delivery, loop, future))
        return future

    def _run(self) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        while True:
            first = get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch) -> None:
        deliveries = [item[0] for item in batch]
        try:
            new_ids = self.store.insert(deliveries)
        except Exception as exc:
            log.error("recording_failed", count=len(batch), error_type=type(exc).__name__, error=str(exc)[:500])
            _resolve(batch, lambda _d, error=exc: error)
            return
        # Enqueue each new id once, even if it came twice in this batch.
        to_enqueue = list(dict.fromkeys(d.id for d in deliveries if d.id in new_ids))
        enqueued = True
        if to_enqueue:
            try:
                self.enqueue(to_enqueue)
            except Exception as exc:
                # Recorded is what matters: the sweeper enqueues these once Redis is back.
                enqueued = False
                log.warning("enqueue_failed", count=len(to_enqueue), error_type=type(exc).__name__)
                try:
                    self.store.mark_not_enqueued(to_enqueue)
                except Exception:
                    log.warning("mark_not_enqueued_failed", count=len(to_enqueue))
        first_seen: set[str] = set()

        def outcome(d: NewDelivery) -> Recorded:
            is_new = d.id in new_ids and d.id not in first_seen
            first_seen.add(d.id)
            return Recorded(new=is_new, enqueued=enqueued and is_new)

        _resolve(batch, outcome)


def _resolve(batch, outcome) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for delivery, loop, future in batch:
        by_loop.setdefault(loop, []).append((future, outcome(delivery)))
    for loop, results in by_loop.items():
        try:
            loop.call_soon_threadsafe(_set_results, results)
        except RuntimeError:  # the loop closed while we committed (shutdown)
            pass


def _set_results(results) -> None:
    for future, result in results:
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
