"""Group commit: what a burst of deliveries gets back, what ends up stored, and what gets enqueued."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest
from sqlalchemy import text

from app.db import make_engine
from app.deliveries.recorder import LoopRecorder, ThreadRecorder, recorder_for
from app.deliveries.records import NewDelivery, unpack
from app.deliveries.stores import sql, sqlite_path, store_for


def _delivery(delivery_id: str, copy: int = 1) -> NewDelivery:
    body = b'{"action":"opened","delivery":"%s","copy":%d}' % (delivery_id.encode(), copy)
    return NewDelivery(id=delivery_id, event="issues", action="opened", installation_id=1, body=body)


class Enqueued:
    """The Redis edge, as a list: records what the recorder hands over, or fails like a Redis that is down."""

    def __init__(self, fail: bool = False) -> None:
        self.ids: list[str] = []
        self.fail = fail
        self.called = threading.Event()

    def enqueue(self, ids) -> None:
        self.called.set()
        if self.fail:
            raise ConnectionRefusedError("Redis is down")
        self.ids.extend(ids)

    def close(self) -> None:
        pass


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    yield engine
    engine.dispose()


def _stored(engine) -> dict[str, object]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT id, enqueued_at FROM deliveries")).all())


def _recorder(database_url: str, engine, enqueue: Enqueued):
    return recorder_for(store_for(database_url.replace("postgresql://", "postgresql+psycopg://"), lambda: engine),
                        enqueue).start()


def test_a_burst_is_recorded_once_each_and_every_new_delivery_enqueued(database_url, engine):
    enqueued = Enqueued()
    recorder = _recorder(database_url, engine, enqueued)
    expected_kind = LoopRecorder if sqlite_path(database_url) else ThreadRecorder
    assert isinstance(recorder, expected_kind)

    async def burst():
        # 40 at once, one of them redelivered inside the same burst and one delivered again afterwards
        ids = [f"d-{i}" for i in range(40)]
        burst = [*(_delivery(i) for i in ids), _delivery("d-7", copy=2)]
        first = await asyncio.gather(*(recorder.record(d) for d in burst))
        again = await recorder.record(_delivery("d-3", copy=2))
        return first, again

    try:
        first, again = asyncio.run(burst())
    finally:
        recorder.close()

    assert [r.new for r in first] == [True] * 40 + [False]
    assert again.new is False
    assert set(_stored(engine)) == {f"d-{i}" for i in range(40)}
    assert sorted(enqueued.ids) == sorted(f"d-{i}" for i in range(40))  # each once, redeliveries not again
    # and each delivery reads back its own body, the first copy's
    ids = [f"d-{i}" for i in range(40)]
    assert {row.id: unpack(row.payload_lz4) for row in sql.waiting(engine, ids)} == {
        i: _delivery(i).body for i in ids}


def test_when_redis_refuses_the_delivery_is_still_recorded_and_left_for_the_sweeper(database_url, engine):
    enqueued = Enqueued(fail=True)
    recorder = _recorder(database_url, engine, enqueued)

    async def deliver():
        return await recorder.record(_delivery("during-outage"))

    try:
        assert asyncio.run(deliver()).new is True
        assert enqueued.called.wait(5)
    finally:
        recorder.close()  # waits for the enqueuer, which marks the delivery after the failure

    assert _stored(engine) == {"during-outage": None}  # recorded, marked never enqueued


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_write_lock_held_elsewhere_delays_the_answer_but_not_the_event_loop(database_url, engine):
    recorder = _recorder(database_url, engine, Enqueued())
    # Given another process (a worker, the other web process) holding SQLite's write lock for 200 ms
    other = sqlite3.connect(sqlite_path(database_url), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.2, lambda: other.execute("COMMIT")).start()

    async def deliver_while_ticking():
        ticks = 0

        async def tick():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        recorded = await recorder.record(_delivery("waited"))
        waited = time.monotonic() - started
        ticker.cancel()
        return recorded, waited, ticks

    try:
        recorded, waited, ticks = asyncio.run(deliver_while_ticking())
    finally:
        recorder.close()
        other.close()

    # Then the delivery is recorded once the lock is free, and the loop served other work meanwhile
    assert recorded.new is True
    assert 0.15 < waited < 5
    assert ticks >= 5
