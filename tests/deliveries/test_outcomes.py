"""A worker stores its deliveries' outcomes from one thread, in few writes, at the process's own priority."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import event, text

from app.deliveries.outcomes import OutcomeWriter
from tests.queue.test_batched_processing import _record
from tests.queue.test_worker_crash import _wait, _worker_process


def _statuses(engine) -> dict[str, tuple[str, int]]:
    with engine.connect() as conn:
        return {row.id: (row.status, row.attempts) for row in conn.execute(text("SELECT id, status, attempts FROM deliveries"))}


def test_outcomes_from_many_threads_are_stored_in_one_write(database_url, engine):
    # Given ten deliveries, and a writer that lets outcomes wait a second for company
    ids = [f"d{n}" for n in range(10)]
    _record(database_url, engine, ids)
    updates = []
    event.listen(engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *_: updates.append(statement) if statement.startswith("UPDATE") else None)
    writer = OutcomeWriter(engine, linger=1.0).start()
    try:
        # When ten threads each submit one outcome
        futures = []
        threads = [threading.Thread(target=lambda i=i: futures.append(writer.submit([(i, "processed", None)]))) for i in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for future in futures:
            future.result(timeout=10)
    finally:
        writer.close()

    # Then all ten are stored, attempt counted, by one UPDATE
    assert _statuses(engine) == {i: ("processed", 1) for i in ids}
    assert len(updates) == 1


def test_an_urgent_outcome_does_not_wait_for_company(database_url, engine):
    _record(database_url, engine, ["slow-one"])
    writer = OutcomeWriter(engine, linger=30.0).start()
    try:
        started = time.monotonic()
        writer.submit([("slow-one", "failed", "GitHub said no")], urgent=True).result(timeout=10)
        took = time.monotonic() - started
    finally:
        writer.close()

    assert took < 5
    assert _statuses(engine) == {"slow-one": ("failed", 1)}


def test_closing_stores_what_was_submitted(database_url, engine):
    _record(database_url, engine, ["last"])
    writer = OutcomeWriter(engine, linger=30.0).start()
    future = writer.submit([("last", "ignored", None)])

    writer.close()

    assert future.result(timeout=0) is None
    assert _statuses(engine) == {"last": ("ignored", 1)}


def _thread_priorities(pid: int) -> dict[str, list[int]]:
    """{thread name: [nice values]} from /proc (field 19 of stat is the nice value)."""
    found: dict[str, list[int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as comm, open(f"/proc/{pid}/task/{tid}/stat") as stat:
                name = comm.read().strip()
                nice = int(stat.read().rsplit(")", 1)[1].split()[16])
        except FileNotFoundError:
            continue
        found.setdefault(name, []).append(nice)
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_a_niced_worker_keeps_its_outcome_writer_at_the_processs_own_priority(make_draftsmith):
    app = make_draftsmith(worker=False)
    worker = _worker_process(app.settings, "--niceness", "10")
    try:
        def settled() -> bool:
            priorities = _thread_priorities(worker.pid)
            return "outcome-writer" in priorities and len(sum(priorities.values(), [])) >= 4
        _wait(settled, 30, "the worker never started its threads")

        priorities = _thread_priorities(worker.pid)
        writer = priorities.pop("outcome-writer")
        others = sum(priorities.values(), [])
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            raise

    assert writer == [os.getpriority(os.PRIO_PROCESS, 0)]
    assert set(others) == {os.getpriority(os.PRIO_PROCESS, 0) + 10}
