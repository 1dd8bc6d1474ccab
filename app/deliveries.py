"""The durable delivery log: record verified deliveries (group commit), mark outcomes, find the unfinished."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from app.logs import get_logger
from app.models import Delivery, utcnow

RECEIVED, PROCESSED, IGNORED, FAILED = "received", "processed", "ignored", "failed"

log = get_logger(component="deliveries")


@dataclass(frozen=True)
class NewDelivery:
    id: str
    event: str
    action: str | None
    installation_id: int | None
    payload: str


@dataclass(frozen=True)
class Recorded:
    """What happened to one delivery: `new` is False for a redelivery we already hold."""

    new: bool
    enqueued: bool


def _insert_ignoring_duplicates(engine: Engine):
    dialect = engine.dialect.name
    table = Delivery.__table__
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=["id"])
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["id"])
    return insert(table)


def record_batch(engine: Engine, deliveries: Sequence[NewDelivery]) -> set[str]:
    """Insert deliveries in one transaction; returns the ids that were new (not redeliveries)."""
    now = utcnow()
    rows = [
        {
            "id": d.id,
            "event": d.event,
            "action": d.action,
            "installation_id": d.installation_id,
            "payload": d.payload,
            "status": RECEIVED,
            "attempts": 0,
            "received_at": now,
            # Set optimistically: we enqueue right after commit, and clear it only if that fails,
            # so the common path costs one write. The sweeper re-enqueues anything left behind.
            "enqueued_at": now,
        }
        for d in deliveries
    ]
    # The same id twice in one batch (GitHub redelivering at once) must insert once.
    unique = list({row["id"]: row for row in rows}.values())
    stmt = _insert_ignoring_duplicates(engine).returning(Delivery.__table__.c.id)
    if engine.dialect.name == "sqlite":
        return _sqlite_insert_with_fast_retry(engine, stmt, unique)
    with engine.begin() as conn:
        return set(conn.execute(stmt, unique).scalars().all())


def _sqlite_insert_with_fast_retry(engine: Engine, stmt, rows, timeout: float = 30.0) -> set[str]:
    """Insert under SQLite's single write lock, retrying every ~0.5 ms while another process holds it.

    SQLite's own busy handler backs off to 100 ms sleeps, which with two web processes and the
    workers sharing one file turned brief lock waits into a p99 of hundreds of milliseconds.
    """
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA busy_timeout=0")
        conn.commit()
        try:
            while True:
                try:
                    with conn.begin():
                        return set(conn.execute(stmt, rows).scalars().all())
                except OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.0005)
        finally:
            conn.rollback()
            conn.exec_driver_sql("PRAGMA busy_timeout=30000")
            conn.commit()


def mark_not_enqueued(engine: Engine, ids: Sequence[str]) -> None:
    with engine.begin() as conn:
        conn.execute(update(Delivery).where(Delivery.id.in_(list(ids))).values(enqueued_at=None))


def mark_enqueued(engine: Engine, ids: Sequence[str]) -> None:
    with engine.begin() as conn:
        conn.execute(update(Delivery).where(Delivery.id.in_(list(ids))).values(enqueued_at=utcnow()))


def finish(engine: Engine, delivery_id: str, status: str, error: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(status=status, error=error, processed_at=utcnow())
        )


def start_attempt(engine: Engine, delivery_id: str) -> Delivery | None:
    """Load a delivery still waiting to be processed and count the attempt; None if already done."""
    with engine.begin() as conn:
        conn.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.status == RECEIVED)
            .values(attempts=Delivery.attempts + 1)
        )
        row = conn.execute(select(Delivery).where(Delivery.id == delivery_id)).mappings().first()
    if row is None or row["status"] != RECEIVED:
        return None
    return Delivery(**row)


def unprocessed(engine: Engine, *, now: datetime, stale_after: timedelta, grace: timedelta, limit: int = 500) -> list[str]:
    """Deliveries never enqueued (older than `grace`) or enqueued longer ago than `stale_after`."""
    stmt = (
        select(Delivery.id)
        .where(
            Delivery.status == RECEIVED,
            or_(
                (Delivery.enqueued_at.is_(None)) & (Delivery.received_at < now - grace),
                Delivery.enqueued_at < now - stale_after,
            ),
        )
        .order_by(Delivery.received_at)
        .limit(limit)
    )
    with engine.connect() as conn:
        return list(conn.execute(stmt).scalars())


def counts_since(engine: Engine, since: datetime) -> list[tuple[str, str, str, int]]:
    stmt = (
        select(Delivery.event, Delivery.action, Delivery.status, func.count())
        .where(Delivery.received_at >= since)
        .group_by(Delivery.event, Delivery.action, Delivery.status)
    )
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(stmt)]


class DeliveryRecorder:
    """Group commit: one writer thread turns concurrently arriving deliveries into one transaction.

    Each request hands its delivery over and awaits its own future. While one batch commits, the
    next requests queue up and go together in the following one, so under load the cost of a
    commit (an fsync on PostgreSQL, a WAL append on SQLite) is shared by many deliveries. After the
    commit, the new ones are enqueued in one pipelined Redis round trip, then every future resolves.
    """

    def __init__(
        self,
        engine: Engine,
        enqueue: Callable[[Sequence[str]], None],
        *,
        max_batch: int = 256,
    ) -> None:
        self.engine = engine
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

    async def record(self, delivery: NewDelivery) -> Recorded:
        if self._thread is None or self._closed:
            raise RuntimeError("delivery recorder is not running")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((delivery, loop, future))
        return await future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
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
            new_ids = record_batch(self.engine, deliveries)
        except Exception as exc:
            log.error("recording_failed", count=len(batch), error_type=type(exc).__name__, error=str(exc)[:500])
            _resolve(batch, lambda _d: exc)
            return
        # Enqueue each new id once, even if it came twice in this batch.
        to_enqueue = [d.id for d in deliveries if d.id in new_ids]
        to_enqueue = list(dict.fromkeys(to_enqueue))
        enqueued = True
        if to_enqueue:
            try:
                self.enqueue(to_enqueue)
            except Exception as exc:
                # Recorded is what matters: the sweeper enqueues these once Redis is back.
                enqueued = False
                log.warning("enqueue_failed", count=len(to_enqueue), error_type=type(exc).__name__)
                try:
                    mark_not_enqueued(self.engine, to_enqueue)
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
