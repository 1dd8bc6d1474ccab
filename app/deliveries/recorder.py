"""Group commit of verified deliveries: concurrent requests become one transaction, then one Redis round trip."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from app.deliveries.records import pack
from app.logs import get_logger

# app.deliveries.stores.sql.RECEIVED; not imported from there, which would load SQLAlchemy into every web process.
RECEIVED = "received"

log = get_logger(component="recorder")


@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: str
    event: str
    action: str | None
    installation_id: int | None
    body: bytes  # exactly as GitHub sent it


@dataclass(frozen=True, slots=True)
class Recorded:
    """What happened to one delivery: `new` is False for a redelivery we already hold."""

    new: bool


class DeliveryStore(Protocol):
    def insert(self, deliveries: Sequence[NewDelivery]) -> set[str]:
        """Insert in one transaction, ignoring ids already stored; returns the ids that were new."""

    def mark_not_enqueued(self, ids: Sequence[str]) -> None: ...

    def close(self) -> None: ...


def _sqlite_timestamp(moment: datetime) -> str:
    # How SQLAlchemy stores a UTC DateTime in SQLite, so the ORM and the sweeper's comparisons read ours.
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class LockBusy(Exception):
    """Another connection holds SQLite's write lock; try again shortly."""


@contextlib.contextmanager
def _busy_as_lock_busy() -> Iterator[None]:
    # With busy_timeout=0, SQLite answers "database is locked" at once instead of waiting.
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise LockBusy() from None
        raise


class SQLiteDeliveryStore:
    """Writes deliveries through one plain sqlite3 connection of its own (no SQLAlchemy in the hot path).

    The connection never waits in SQLite's busy handler, which backs off to 100 ms sleeps: while
    another process (the other web process, a worker) holds the single write lock, `try_insert`
    says so at once and the caller retries within a fraction of a millisecond. synchronous=NORMAL
    in WAL mode: a commit survives the process crashing the instant after (the WAL is in the OS
    page cache); only a power loss or kernel crash can take the last few commits back.

    It never checkpoints on its own commits. Copying the WAL into the database file ends in an
    fsync, and doing it from the web processes cost ingress a fifth of its throughput and most of
    its p99 at saturation (bench/README.md). Workers checkpoint instead: their SQLAlchemy
    connections keep SQLite's auto-checkpoint. A thread here checkpoints only when the WAL has
    outgrown `checkpoint_above_bytes`, which happens only while no worker writes, so the WAL stays
    bounded even then.
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
            with _busy_as_lock_busy():
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
        return self._retrying(lambda: self.try_insert(deliveries))

    def _insert_rows(self, deliveries: Sequence[NewDelivery]) -> set[str]:
        # Set enqueued_at optimistically: we enqueue right after commit and clear it only if that
        # fails, so the common path costs one write. The sweeper re-enqueues anything left behind.
        now = _sqlite_timestamp(datetime.now(UTC))
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
            with self._lock, _busy_as_lock_busy():
                self.conn.executemany("UPDATE deliveries SET enqueued_at = NULL WHERE id = ?", [(i,) for i in ids])

        self._retrying(update)

    def _retrying(self, attempt: Callable[[], object]):
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                return attempt()
            except LockBusy:
                if time.monotonic() > deadline:
                    raise sqlite3.OperationalError("database is locked") from None
                time.sleep(0.0005)

    def close(self) -> None:
        self._stop.set()
        self._checkpointer.join(5)
        self.conn.close()


class EngineDeliveryStore:
    """Writes deliveries through a SQLAlchemy engine (PostgreSQL, or SQLite in memory)."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def insert(self, deliveries: Sequence[NewDelivery]) -> set[str]:
        from app.deliveries.stores.sql import record_batch

        return record_batch(self.engine, deliveries)

    def mark_not_enqueued(self, ids: Sequence[str]) -> None:
        from app.deliveries.stores.sql import mark_not_enqueued

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


def recorder_for(store: DeliveryStore, enqueue: Callable[[Sequence[str]], None]) -> DeliveryRecorder:
    """A SQLite file commits on the event loop (a commit there is a few tens of microseconds a row and
    never waits); a database across the network commits on a thread of its own."""
    if isinstance(store, SQLiteDeliveryStore):
        return LoopRecorder(store, enqueue)
    return ThreadRecorder(store, enqueue)


class DeliveryRecorder:
    """Group commit: deliveries arriving together are recorded in one transaction, then enqueued together.

    Each request hands its delivery over and awaits its own future. While one batch commits, the
    next requests gather and go together in the following one, so under load the cost of a commit
    (an fsync on PostgreSQL, a WAL append on SQLite) is shared by many deliveries. The futures
    resolve as soon as their batch is committed: a 202 means recorded, which is what makes a
    delivery safe. The new ids then go to an enqueuer thread, which sends whatever has gathered in
    one pipelined Redis round trip, so Redis never sits in a request's latency or holds up the next
    commit. If the enqueue fails, the ids are marked never enqueued; if the process dies first, they
    stay marked enqueued and the sweeper re-sends them once that mark is older than the heartbeat
    timeout. Either way nothing recorded is lost.

    Subclasses decide where the commit runs (`_start_committing`, `_submit`, `_stop_committing`).
    """

    def __init__(self, store: DeliveryStore, enqueue: Callable[[Sequence[str]], None], *, max_batch: int = 256,
                 enqueue_linger: float = 0.02) -> None:
        self.store = store
        self.enqueue = enqueue
        self.max_batch = max_batch
        # The enqueuer waits this long after the first new id for others to join it. Nobody waits on
        # it (the 202 is already sent; GitHub's own delivery takes far longer), and at a steady 1000
        # deliveries/s it turns a queue message, a thread wake-up and a worker write per delivery
        # into one per ten. Each worker write takes the SQLite write lock the web processes commit
        # under, and those writes, not the worker's CPU, were most of what the worker cost ingress.
        self.enqueue_linger = enqueue_linger
        self._to_enqueue: queue.SimpleQueue = queue.SimpleQueue()
        self._enqueuer: threading.Thread | None = None
        self._closed = False

    def start(self) -> DeliveryRecorder:
        self._enqueuer = threading.Thread(target=self._run_enqueuer, name="delivery-enqueuer", daemon=True)
        self._enqueuer.start()
        self._start_committing()
        return self

    def close(self, timeout: float = 10.0) -> None:
        if self._enqueuer is None:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        self._stop_committing(timeout)
        self._to_enqueue.put(None)  # after every commit: the enqueuer sends what they gave it, then ends
        self._enqueuer.join(max(0.0, deadline - time.monotonic()))
        self._enqueuer = None
        self.store.close()

    def record(self, delivery: NewDelivery) -> asyncio.Future:
        """A future resolved with Recorded once the delivery is committed."""
        if self._enqueuer is None or self._closed:
            raise RuntimeError("delivery recorder is not running")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._submit(delivery, loop, future)
        return future

    def _start_committing(self) -> None:
        raise NotImplementedError

    def _submit(self, delivery: NewDelivery, loop: asyncio.AbstractEventLoop, future: asyncio.Future) -> None:
        raise NotImplementedError

    def _stop_committing(self, timeout: float) -> None:
        raise NotImplementedError

    def _committed(self, deliveries: Sequence[NewDelivery], new_ids: set[str]) -> list[Recorded]:
        """Each delivery's outcome, in order; hands the new ids to the enqueuer."""
        first_seen: set[str] = set()
        outcomes = []
        for d in deliveries:
            is_new = d.id in new_ids and d.id not in first_seen
            first_seen.add(d.id)
            outcomes.append(Recorded(new=is_new))
        if new_ids:
            # Each new id once, even if it came twice in this batch.
            self._to_enqueue.put(list(dict.fromkeys(d.id for d in deliveries if d.id in new_ids)))
        return outcomes

    def _run_enqueuer(self) -> None:
        for batches in _batches(self._to_enqueue, self.max_batch, linger=self.enqueue_linger):
            ids = [delivery_id for batch in batches for delivery_id in batch]
            try:
                self.enqueue(ids)
            except Exception as exc:
                # Recorded is what matters: the sweeper enqueues these once Redis is back.
                log.warning("enqueue_failed", count=len(ids), error_type=type(exc).__name__)
                try:
                    self.store.mark_not_enqueued(ids)
                except Exception:
                    log.warning("mark_not_enqueued_failed", count=len(ids))


class LoopRecorder(DeliveryRecorder):
    """Commits on the event loop's own thread: everything that arrived in one turn of the loop goes in
    one transaction.

    A thread of its own cost more than the commit: every batch crossed threads twice, and the
    web process's threads queued for the GIL and a CPU at each crossing (ingress gained ~17%
    without it, workers paused; bench/README.md). A busy write lock is retried a moment later
    on the loop's timer, so the loop never waits for it.
    """

    store: SQLiteDeliveryStore
    RETRY_SECONDS = 0.0003

    def _start_committing(self) -> None:
        self._pending: list[tuple[NewDelivery, asyncio.Future]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy_since: float | None = None

    def _submit(self, delivery, loop, future) -> None:
        self._pending.append((delivery, future))
        if self._loop is None:  # no commit scheduled yet: one, after whatever else this loop turn runs
            self._loop = loop
            loop.call_soon(self._commit_pending)

    def _commit_pending(self) -> None:
        loop = self._loop
        batch = self._pending[: self.max_batch]
        if not batch:  # committed at close
            self._loop = None
            return
        deliveries = [d for d, _ in batch]
        try:
            new_ids = self.store.try_insert(deliveries)
        except LockBusy:
            now = time.monotonic()
            self._busy_since = self._busy_since or now
            if now - self._busy_since < self.store.lock_timeout:
                loop.call_later(self.RETRY_SECONDS, self._commit_pending)
                return
            outcomes = [sqlite3.OperationalError("database is locked")] * len(batch)
        except Exception as exc:
            log.error("recording_failed", count=len(batch), error_type=type(exc).__name__, error=str(exc)[:500])
            outcomes = [exc] * len(batch)
        else:
            outcomes = self._committed(deliveries, new_ids)
        self._busy_since = None
        del self._pending[: len(batch)]
        if self._pending:
            loop.call_soon(self._commit_pending)
        else:
            self._loop = None
        for (_, future), outcome in zip(batch, outcomes):
            _settle(future, outcome)

    def _stop_committing(self, timeout: float) -> None:
        # Shutting down with requests still waiting (uvicorn normally drains them first): commit them now.
        pending, self._pending = self._pending, []
        if not pending:
            return
        deliveries = [d for d, _ in pending]
        try:
            outcomes: list = self._committed(deliveries, self.store.insert(deliveries))
        except Exception as exc:
            outcomes = [exc] * len(pending)
        for (_, future), outcome in zip(pending, outcomes):
            future.get_loop().call_soon_threadsafe(_settle, future, outcome)


class ThreadRecorder(DeliveryRecorder):
    """Commits on a thread of its own, for stores whose commit waits on the network (PostgreSQL)."""

    def _start_committing(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._committer = threading.Thread(target=self._run, name="delivery-recorder", daemon=True)
        self._committer.start()

    def _submit(self, delivery, loop, future) -> None:
        self._queue.put((delivery, loop, future))

    def _stop_committing(self, timeout: float) -> None:
        self._queue.put(None)
        self._committer.join(timeout)

    def _run(self) -> None:
        for batch in _batches(self._queue, self.max_batch):
            deliveries = [item[0] for item in batch]
            try:
                outcomes: list = self._committed(deliveries, self.store.insert(deliveries))
            except Exception as exc:
                log.error("recording_failed", count=len(batch), error_type=type(exc).__name__, error=str(exc)[:500])
                outcomes = [exc] * len(batch)
            by_loop: dict[asyncio.AbstractEventLoop, list] = {}
            for (_, loop, future), outcome in zip(batch, outcomes):
                by_loop.setdefault(loop, []).append((future, outcome))
            for loop, results in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_settle_all, results)
                except RuntimeError:  # the loop closed while we committed (shutdown)
                    pass


def _batches(source: queue.SimpleQueue, max_items: int, *, linger: float = 0.0) -> Iterator[list]:
    """Lists of what `source` holds: waits for one item, then `linger` seconds more, then takes whatever
    else is there. Ends at a None item, after yielding what came before it."""
    get, get_nowait = source.get, source.get_nowait
    while True:
        first = get()
        if first is None:
            return
        if linger:
            time.sleep(linger)
        batch = [first]
        while len(batch) < max_items:
            try:
                item = get_nowait()
            except queue.Empty:
                break
            if item is None:
                yield batch
                return
            batch.append(item)
        yield batch


def _settle(future: asyncio.Future, outcome) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _settle_all(results) -> None:
    for future, outcome in results:
        _settle(future, outcome)
