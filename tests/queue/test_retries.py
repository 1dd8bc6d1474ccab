"""A delivery whose handler fails on something transient is tried again with back-off; a bug fails it once."""

from __future__ import annotations

import asyncio

import dramatiq
import httpx
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import text

from app.events.router import Router
from app.queue import retries
from app.queue.actors import RETRYING, declare_actors, handle_deliveries
from app.runtime import Runtime
from app.settings import Settings
from tests.queue.test_batched_processing import _record


@pytest.fixture
def runtime(tmp_path, database_url, engine):
    settings = Settings(DATABASE_URL=database_url, REDIS_URL="redis://127.0.0.1:9", DRAFTSMITH_DATA_DIR=str(tmp_path))
    broker = StubBroker()
    runtime = Runtime(settings, engine=engine, github=None, broker=broker)
    declare_actors(broker, runtime)
    yield runtime
    runtime.close()


def _flaky_router(failures: dict[str, list[Exception]], handled: list[str]) -> Router:
    router = Router()

    @router.register("issues", action="opened")
    async def handler(ctx) -> None:
        pending = failures.get(ctx.event.delivery_id) or []
        if pending:
            raise pending.pop(0)
        handled.append(ctx.event.delivery_id)

    return router


def _stored(engine) -> dict[str, tuple[str, str | None]]:
    with engine.connect() as conn:
        return {row.id: (row.status, row.error) for row in conn.execute(text("SELECT id, status, error FROM deliveries"))}


def _drain(runtime: Runtime, router: Router) -> list[int]:
    """Run every queued process_deliveries message as a worker would; returns the attempts they carried."""
    attempts = []
    for _ in range(50):
        raw = [queue.get() for queue in runtime.broker.queues.values() for _ in range(queue.qsize())]
        if not raw:
            return attempts
        for message in map(dramatiq.Message.decode, raw):
            ids, attempt = message.args
            attempts.append(attempt)
            asyncio.run(handle_deliveries(runtime, ids, router=router, attempt=attempt))
    raise AssertionError("the retries never ended")


def test_a_transient_failure_is_retried_until_it_passes_and_the_handler_acts_once(runtime, database_url, engine):
    _record(database_url, engine, ["flaky", "fine"])
    handled: list[str] = []
    router = _flaky_router({"flaky": [httpx.ConnectError("github down"), httpx.ReadTimeout("slow")]}, handled)

    first = asyncio.run(handle_deliveries(runtime, ["flaky", "fine"], router=router))
    assert first == {"flaky": RETRYING, "fine": "processed"}
    assert _stored(engine)["flaky"] == ("received", None), "it waits for its next attempt"
    assert _drain(runtime, router) == [1, 2]

    assert handled == ["fine", "flaky"]
    assert _stored(engine)["flaky"] == ("processed", None)


def test_a_bug_fails_at_once_and_endless_trouble_gives_up_with_its_reason(runtime, database_url, engine):
    _record(database_url, engine, ["bug", "down"])
    router = _flaky_router({"bug": [KeyError("number")],
                            "down": [httpx.ConnectError("github down")] * (retries.MAX_RETRIES + 1)}, [])

    assert asyncio.run(handle_deliveries(runtime, ["bug", "down"], router=router)) == {"bug": "failed", "down": RETRYING}
    assert _drain(runtime, router) == list(range(1, retries.MAX_RETRIES + 1))

    stored = _stored(engine)
    assert stored["bug"][0] == "failed" and "gave up" not in stored["bug"][1]
    assert stored["down"][0] == "failed"
    assert f"gave up after {retries.MAX_RETRIES + 1} attempts" in stored["down"][1]


@pytest.mark.parametrize(("exc", "transient"), [
    (httpx.ConnectError("refused"), True),
    (httpx.ReadTimeout("slow"), True),
    (KeyError("x"), False),
    (ValueError("bad data"), False),
])
def test_what_counts_as_transient(exc, transient):
    assert retries.is_transient(exc) is transient


def test_back_off_doubles():
    assert [retries.delay_ms(n) for n in (1, 2, 3, 4)] == [1000, 2000, 4000, 8000]
