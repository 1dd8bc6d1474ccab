"""dramatiq actors (thin, take ids, safe to run twice), declared on the broker a process starts with, running with its Runtime."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dramatiq
import orjson

from app.deliveries import records
from app.deliveries.records import unpack
from app.deliveries.stores import sql
from app.events.event import Event
from app.logs import scrub
from app.queue import retries

if TYPE_CHECKING:
    from app.events.router import Router
    from app.runtime import Runtime

DELIVERIES_QUEUE = "default"
# Agent runs take minutes; on their own queue they never sit in front of webhook processing.
RUNS_QUEUE = "runs"

_loops = threading.local()


def _run(coro):
    """Run a coroutine on this worker thread's own event loop.

    Not dramatiq's AsyncIO middleware: it runs every async actor on one shared loop thread, so one
    handler's blocking database call would stall all the others. A loop per worker thread keeps
    handlers free to use the (synchronous) database session.
    """
    loop = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = _loops.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coro)


# A delivery whose handling took longer than this probably called GitHub: its outcome is stored at
# once, not after others join it, so a crash cannot make the bot do the same thing twice.
URGENT_AFTER_SECONDS = 0.02


RETRYING = "retrying"  # not stored: the delivery stays waiting for its next attempt


async def handle_deliveries(runtime: Runtime, delivery_ids: Sequence[str], router: Router | None = None,
                            attempt: int = 0) -> dict[str, str]:
    """Route recorded deliveries and store their outcomes; returns {id: outcome} for those not already handled.

    One message carries every delivery a web process recorded in a few milliseconds, so a burst
    costs the worker one queue message and one read per batch rather than per delivery, and the
    process's outcome writer (app.deliveries.outcomes) stores the outcomes of all its threads together.
    Up to DRAFTSMITH_WORKER_THREADS deliveries are handled at once, so deliveries that make the
    bot call GitHub do not wait for each other any more than they did one per message.
    """
    from app.handlers import router as merged_router

    router = router or merged_router
    # The lookup runs inline, not in asyncio.to_thread: this loop belongs to one worker thread, a
    # short blocking read stalls nothing else, and a hand-off to the executor's thread cost more CPU
    # than the query itself.
    rows = sql.waiting(runtime.engine, delivery_ids)
    outcomes: dict[str, str] = {}
    stored: list = []  # Futures: this message is acknowledged only once every outcome is stored
    if len(rows) == 1:  # the common case at low load: no task, no semaphore
        outcomes[rows[0].id] = await _handle_one(runtime, rows[0], router, stored, attempt)
    elif rows:
        slots = asyncio.Semaphore(max(1, runtime.settings.worker_threads))

        async def handle(row) -> None:
            async with slots:
                outcomes[row.id] = await _handle_one(runtime, row, router, stored, attempt)

        await asyncio.gather(*(handle(row) for row in rows))
    if stored:
        await asyncio.gather(*(asyncio.wrap_future(future) for future in stored))
    again = [delivery_id for delivery_id, outcome in outcomes.items() if outcome == RETRYING]
    if again:
        runtime.broker.get_actor("process_deliveries").send_with_options(
            args=(again, attempt + 1), delay=retries.delay_ms(attempt + 1))
    return outcomes


async def _handle_one(runtime: Runtime, row, router: Router, stored: list, attempt: int = 0) -> str:
    from app.handlers.context import Context
    from app.handlers.installations import remember_installation

    started = time.monotonic()
    # Until the body is parsed, a context that knows only the delivery, to log and fail it with.
    event = Event(name=row.event, delivery_id=row.id, payload={})

    def will_retry(exc: BaseException) -> bool:
        return retries.is_transient(exc) and attempt < retries.MAX_RETRIES

    ctx = Context.for_event(event, runtime, attempt=attempt, will_retry=will_retry)
    try:
        # Inside the try: ingress checks only that the body is well-formed JSON, and orjson refuses a
        # little more (numbers past a double's range); that fails this delivery, not the message it came in.
        # orjson: ~5x faster than json on a 13 KB payload.
        event = Event(name=row.event, delivery_id=row.id, payload=orjson.loads(unpack(row.payload_lz4)))
        ctx = Context.for_event(event, runtime, attempt=attempt, will_retry=will_retry)
        remember_installation(runtime.engine, event)
        ran = await router.dispatch(event.name, event.payload, ctx)
    except Exception as exc:
        if retries.installation_gone(exc):
            ctx.log.info("delivery_ignored", reason="the installation no longer exists")
            outcome, stored_error = records.IGNORED, None
        elif will_retry(exc):
            ctx.log.warning("delivery_retrying", error_type=type(exc).__name__, attempt=attempt + 1,
                            in_ms=retries.delay_ms(attempt + 1))
            runtime.metrics.processed.labels(event.name, event.action or "", RETRYING).inc()
            return RETRYING
        else:
            error = scrub("".join(traceback.format_exception(exc))[-8000:], runtime.settings.secret_values())
            if attempt:
                error = f"gave up after {attempt + 1} attempts\n{error}"
            ctx.log.error("delivery_failed", error_type=type(exc).__name__, attempts=attempt + 1,
                          error=scrub(str(exc), runtime.settings.secret_values())[:500])
            outcome, stored_error = records.FAILED, error
    else:
        outcome, stored_error = (records.PROCESSED if ran else records.IGNORED), None
        ctx.log.info("delivery_" + outcome, handlers=ran)
    urgent = time.monotonic() - started >= URGENT_AFTER_SECONDS
    stored.append(runtime.outcomes.submit([(row.id, outcome, stored_error)], urgent=urgent))
    runtime.metrics.processed.labels(event.name, event.action or "", outcome).inc()
    return outcome


def process_deliveries(runtime: Runtime, delivery_ids: list[str], attempt: int = 0) -> None:
    """Handle recorded deliveries; those that failed on something transient come back `attempt + 1`, later."""
    _run(handle_deliveries(runtime, delivery_ids, attempt=attempt))


def process_delivery(runtime: Runtime, delivery_id: str) -> None:
    """One delivery per message: what versions before batched messages enqueued (still in Redis after an upgrade)."""
    process_deliveries(runtime, [delivery_id])


def run_next(runtime: Runtime) -> None:
    """A run slot is asked for: start the queued run that is next in fair order (app.tasks.fair_queue)."""
    # Imported here: the runner pulls in agents and sandboxes the web process never needs.
    from app.engines.lifecycle import execute_next

    _run(execute_next(runtime))


def run_task(runtime: Runtime, run_id: int) -> None:
    """One named run: what versions before fair dispatch enqueued (still in Redis after an upgrade)."""
    from app.engines.lifecycle import execute_run

    result = execute_run(runtime, run_id)
    if inspect.isawaitable(result):
        _run(result)


@dataclass(frozen=True)
class Actors:
    process_deliveries: dramatiq.Actor
    process_delivery: dramatiq.Actor
    run_next: dramatiq.Actor
    run_task: dramatiq.Actor


def declare_actors(broker: dramatiq.Broker, runtime: Runtime | None = None) -> Actors:
    """Declare our actors on `broker`, running with `runtime`; where a process starts, once per broker.

    Without `runtime`, a broker that only enqueues: its actors refuse to run.
    """

    def bound(fn: Callable[..., None]) -> Callable[..., None]:
        def actor(*args) -> None:  # dramatiq calls it with the message's arguments
            if runtime is None:
                raise RuntimeError(f"{fn.__name__} was declared without a Runtime: this broker only enqueues")
            fn(runtime, *args)

        actor.__name__ = actor.__qualname__ = fn.__name__
        return actor

    return Actors(
        # dramatiq does not retry: a handler failing on something transient sends its deliveries again
        # itself, with back-off (app.queue.retries); anything else is stored failed with its reason, and
        # the sweeper re-enqueues what a crash left unfinished.
        process_deliveries=dramatiq.actor(
            bound(process_deliveries), broker=broker, actor_name="process_deliveries",
            queue_name=DELIVERIES_QUEUE, max_retries=0, time_limit=10 * 60 * 1000,
        ),
        process_delivery=dramatiq.actor(
            bound(process_delivery), broker=broker, actor_name="process_delivery",
            queue_name=DELIVERIES_QUEUE, max_retries=0, time_limit=10 * 60 * 1000,
        ),
        run_next=dramatiq.actor(
            bound(run_next), broker=broker, actor_name="run_next",
            queue_name=RUNS_QUEUE, max_retries=0, time_limit=6 * 60 * 60 * 1000,
        ),
        run_task=dramatiq.actor(
            bound(run_task), broker=broker, actor_name="run_task",
            queue_name=RUNS_QUEUE, max_retries=0, time_limit=6 * 60 * 60 * 1000,
        ),
    )
