"""Group commit of verified deliveries: concurrent requests become one transaction, then one Redis round trip."""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence

from app.deliveries.enqueuers import Enqueuer
from app.deliveries.records import NewDelivery, Recorded
from app.deliveries.stores import DeliveryStore
from app.deliveries.stores.sqlite import LockBusy, SQLiteDeliveryStore
from app.logs import get_logger

log = get_logger(component="recorder")


def recorder_for(store: DeliveryStore, enqueuer: Enqueuer) -> DeliveryRecorder:
    """A SQLite file commits on the event loop (a commit there is a few tens of microseconds a row and
    never waits); a database across the network commits on a thread of its own."""
    if isinstance(store, SQLiteDeliveryStore):
        return LoopRecorder(store, enqueuer)
    return ThreadRecorder(store, enqueuer)


class DeliveryRecorder:
    """Group commit: deliveries arriving together are recorded in one transaction, then enqueued together.

    `record()` resolves once its batch is committed, so a 202 means recorded; while one batch
    commits, the next requests gather for the following one. The new ids then go to an enqueuer
    thread, so Redis is never in a request's latency. A failed enqueue marks the ids never
    enqueued; a process that dies first leaves them marked, and the sweeper re-sends them once the
    mark is older than the heartbeat timeout. Either way nothing recorded is lost.

    Subclasses decide where the commit runs (`_start_committing`, `_submit`, `_stop_committing`).
    """

    def __init__(self, store: DeliveryStore, enqueuer: Enqueuer, *, max_batch: int = 256,
                 enqueue_linger: float = 0.02) -> None:
        self.store = store
        self.enqueuer = enqueuer
        self.max_batch = max_batch
        # Ids wait this long for company after the 202: fewer messages, so fewer worker writes under
        # the write lock ingress commits under.
        self.enqueue_linger = enqueue_linger
        self._to_enqueue: queue.SimpleQueue = queue.SimpleQueue()
        self._enqueue_thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> DeliveryRecorder:
        self._enqueue_thread = threading.Thread(target=self._run_enqueuer, name="delivery-enqueuer", daemon=True)
        self._enqueue_thread.start()
        self._start_committing()
        return self

    def close(self, timeout: float = 10.0) -> None:
        if self._enqueue_thread is None:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        self._stop_committing(timeout)
        self._to_enqueue.put(None)  # after every commit: the enqueuer sends what they gave it, then ends
        self._enqueue_thread.join(max(0.0, deadline - time.monotonic()))
        self._enqueue_thread = None
        self.store.close()

    def record(self, delivery: NewDelivery) -> asyncio.Future:
        """A future resolved with Recorded once the delivery is committed."""
        if self._enqueue_thread is None or self._closed:
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
                self.enqueuer.enqueue(ids)
            except Exception as exc:
                # Recorded is what matters: the sweeper enqueues these once Redis is back.
                log.warning("enqueue_failed", count=len(ids), error_type=type(exc).__name__)
                try:
                    self.store.mark_not_enqueued(ids)
                except Exception:
                    log.warning("mark_not_enqueued_failed", count=len(ids))


class LoopRecorder(DeliveryRecorder):
    """Commits on the event loop's own thread: everything that arrived in one turn of the loop goes in
    one transaction. A SQLite commit costs less than handing it to a thread; a busy write lock is
    retried on the loop's timer, so the loop never waits for it.
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
