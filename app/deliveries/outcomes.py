"""One thread per worker process stores delivery outcomes, in batches, at the process's own priority."""

from __future__ import annotations

import ctypes
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from app.deliveries.stores import sql
from app.logs import get_logger

log = get_logger(component="outcomes")

# How long a quick delivery's outcome may wait for others to share its write.
LINGER_SECONDS = 0.02


@dataclass
class _Submission:
    outcomes: Sequence[tuple[str, str, str | None]]
    urgent: bool
    at: float = field(default_factory=time.monotonic)
    done: Future = field(default_factory=Future)


class OutcomeWriter:
    """Stores (delivery id, status, error) outcomes for every thread of a worker process.

    A thread of its own, for two reasons. On SQLite a write holds the lock the web processes commit
    under, and a niced thread preempted while holding it makes them wait; this one is started before
    the worker lowers its other threads' priority (app.queue.worker). And one writer for all threads
    means one write per LINGER_SECONDS, however many threads.

    Outcomes wait up to LINGER_SECONDS for company, unless one is `urgent` (a delivery whose
    handlers took long enough to have called GitHub: its outcome is stored at once, so a crash
    cannot make the bot do it twice). `submit` returns a Future resolved once they are stored;
    a worker acknowledges its message only after that.
    """

    def __init__(self, engine, *, linger: float = LINGER_SECONDS) -> None:
        self.engine = engine
        self.linger = linger
        self._queue: queue.SimpleQueue[_Submission | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> OutcomeWriter:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="outcome-writer", daemon=True)
                self._thread.start()
        return self

    def submit(self, outcomes: Sequence[tuple[str, str, str | None]], *, urgent: bool = False) -> Future:
        self.start()
        submission = _Submission(list(outcomes), urgent)
        self._queue.put(submission)
        return submission.done

    def close(self, timeout: float = 10.0) -> None:
        """Store what was submitted, then stop."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        _name_this_thread(b"outcome-writer")
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch, stopping = self._gather(first)
            try:
                sql.finish(self.engine, [o for s in batch for o in s.outcomes])
            except Exception as exc:  # the messages fail; the sweeper hands their deliveries out again
                log.warning("outcomes_not_stored", count=len(batch), error_type=type(exc).__name__)
                for submission in batch:
                    submission.done.set_exception(exc)
            else:
                for submission in batch:
                    submission.done.set_result(None)

    def _gather(self, first: _Submission) -> tuple[list[_Submission], bool]:
        """`first` and whatever joins it before its linger ends (at once if any is urgent); and
        whether the stop marker came meanwhile."""
        batch, urgent = [first], first.urgent
        deadline = first.at + self.linger
        while True:
            remaining = 0.0 if urgent else deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                return batch, False
            if item is None:
                return batch, True
            batch.append(item)
            urgent = urgent or item.urgent


def _name_this_thread(name: bytes) -> None:
    # So `top -H` and /proc/<pid>/task/*/comm show which thread is which (Linux; elsewhere a no-op).
    try:
        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name[:15]), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass
