"""A burst of deliveries travels in a few queue messages, and each delivery in a message is handled on its own."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest
import redis as redis_lib
from sqlalchemy import text

from app.deliveries.records import PROCESSED, NewDelivery
from app.deliveries.stores import sql, store_for
from app.events.router import Router
from app.queue.actors import DELIVERIES_QUEUE, handle_deliveries
from app.queue.broker import NAMESPACE
from app.runtime import Runtime
from app.settings import Settings
from tests.support.webhooks import encode, example, signed_headers


def _queued_messages(redis_url: str) -> list[dict]:
    client = redis_lib.Redis.from_url(redis_url)
    try:
        return [json.loads(raw) for raw in client.hvals(f"{NAMESPACE}:{DELIVERIES_QUEUE}.msgs")]
    finally:
        client.close()


async def _post_all(url: str, secret: str, bodies: list[tuple[str, bytes]]) -> list[int]:
    async with httpx.AsyncClient(timeout=30) as client:
        answers = await asyncio.gather(*(
            client.post(url, content=body, headers=signed_headers(body, "issues", secret, delivery_id))
            for delivery_id, body in bodies
        ))
    return [a.status_code for a in answers]


def test_a_burst_travels_in_a_few_messages_and_every_delivery_is_processed_once(make_draftsmith):
    # Given no worker running yet, and 40 deliveries posted at once
    app = make_draftsmith(worker=False)
    body = encode(example("issues", "opened"))  # no handler: quick to process, nothing asked of GitHub
    bodies = [(str(uuid.uuid4()), body) for _ in range(40)]
    statuses = asyncio.run(_post_all(app.webhook_url, app.settings.github_webhook_secret.get_secret_value(), bodies))
    assert statuses == [202] * 40

    # Then Redis holds them in a handful of messages, each id in exactly one
    def all_enqueued() -> list[dict]:
        for _ in range(200):
            messages = _queued_messages(app.settings.redis_url)
            if sum(len(m["args"][0]) for m in messages) >= 40:
                return messages
            time.sleep(0.02)
        raise TimeoutError("not every delivery was enqueued")

    messages = all_enqueued()
    carried = [delivery_id for m in messages for delivery_id in m["args"][0]]
    assert sorted(carried) == sorted(d for d, _ in bodies)
    assert {m["actor_name"] for m in messages} == {"process_deliveries"}
    assert len(messages) <= 10

    # And once a worker runs, every delivery is handled (none has a handler), each in one attempt
    app.start_worker()
    app.join()
    with app.engine.connect() as conn:
        rows = conn.execute(text("SELECT status, attempts FROM deliveries")).all()
    assert sorted(set(rows)) == [("ignored", 1)] and len(rows) == 40


def _record(database_url: str, engine, ids: list[str]) -> None:
    store = store_for(database_url.replace("postgresql://", "postgresql+psycopg://"), lambda: engine)
    try:
        store.insert([
            NewDelivery(id=i, event="issues", action="opened", installation_id=None,
                        body=json.dumps({"action": "opened", "n": i}).encode())
            for i in ids
        ])
    finally:
        store.close()


@pytest.fixture
def runtime(tmp_path, database_url, engine):
    """A worker's Runtime on the test database (no GitHub App, Redis never reached); closed after."""
    settings = Settings(DATABASE_URL=database_url, REDIS_URL="redis://127.0.0.1:9", DRAFTSMITH_DATA_DIR=str(tmp_path),
                        DRAFTSMITH_WORKER_THREADS=4)
    runtime = Runtime(settings, engine=engine, github=None)
    yield runtime
    runtime.close()  # stops its outcome writer thread


def test_one_failing_delivery_fails_alone_and_finished_ones_are_not_handled_again(database_url, engine, runtime):
    # Given five recorded deliveries, one of which was already processed, and a handler that fails on one
    ids = [f"d{n}" for n in range(5)]
    _record(database_url, engine, ids)
    sql.finish(engine, [("d0", PROCESSED, None)])
    handled: list[str] = []
    router = Router()

    @router.register("issues", action="opened")
    async def handler(ctx) -> None:
        handled.append(ctx.event.payload["n"])
        if ctx.event.payload["n"] == "d2":
            raise ValueError("this one is broken")

    # When one message carries all five (twice over, as after a redelivery of the message)
    outcomes = asyncio.run(handle_deliveries(runtime, ids + ids, router=router))
    again = asyncio.run(handle_deliveries(runtime, ids, router=router))

    # Then each pending one ran once, the broken one failed with its error, and the rest were processed
    assert sorted(handled) == ["d1", "d2", "d3", "d4"]
    assert outcomes == {"d1": "processed", "d2": "failed", "d3": "processed", "d4": "processed"}
    assert again == {}
    with engine.connect() as conn:
        stored = {row.id: row for row in conn.execute(text("SELECT id, status, attempts, error FROM deliveries"))}
    assert {i: (r.status, r.attempts) for i, r in stored.items()} == {
        "d0": ("processed", 1), "d1": ("processed", 1), "d2": ("failed", 1), "d3": ("processed", 1), "d4": ("processed", 1),
    }
    assert "this one is broken" in stored["d2"].error and stored["d1"].error is None


def test_deliveries_in_one_message_are_handled_side_by_side(database_url, engine, runtime):
    # Given three deliveries whose handlers can only finish once all three have started
    ids = ["a", "b", "c"]
    _record(database_url, engine, ids)
    router = Router()
    started: set[str] = set()
    all_started = asyncio.Event()

    @router.register("issues", action="opened")
    async def handler(ctx) -> None:
        started.add(ctx.event.delivery_id)
        if len(started) == len(ids):
            all_started.set()
        await asyncio.wait_for(all_started.wait(), 5)  # a handler waiting on GitHub, as it were

    # When one message carries them
    outcomes = asyncio.run(handle_deliveries(runtime, ids, router=router))

    # Then none waited for another to finish: all three were processed
    assert outcomes == {"a": "processed", "b": "processed", "c": "processed"}


def test_finding_a_batch_reads_only_its_rows_however_many_wait(tmp_path):
    # Given 5000 deliveries waiting (a burst being drained) on SQLite, which has no planner statistics
    from sqlalchemy import event

    from app.db import make_engine
    from app.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'burst.db'}"
    engine = make_engine(url)
    upgrade(engine)
    _record(url, engine, [f"w{n:05d}" for n in range(5000)])
    steps = []

    @event.listens_for(engine, "connect")
    def count_steps(dbapi_connection, _record) -> None:
        # SQLite calls this every 1000 virtual machine instructions: a measure of rows visited.
        dbapi_connection.set_progress_handler(lambda: steps.append(1) and 0, 1000)

    engine.dispose()  # new connections, each counting

    # When a worker looks up one message's worth of them
    found = sql.waiting(engine, [f"w{n:05d}" for n in range(0, 3200, 100)])

    # Then it got those 32, and visited about as many rows, not every waiting one
    assert [row.id for row in found] == [f"w{n:05d}" for n in range(0, 3200, 100)]
    assert len(steps) < 20, f"{len(steps) * 1000} instructions to find 32 rows"
    engine.dispose()
