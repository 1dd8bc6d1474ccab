"""Run a dramatiq worker on our broker: in this process (tests, serve) or as its own process (`python -m app.queue.worker`)."""

from __future__ import annotations

import logging
import os
import signal
import threading

import dramatiq

from app.deliveries.sweeper import Sweeper
from app.queue.actors import DELIVERIES_QUEUE, RUNS_QUEUE
from app.queue.startup import build_runtime
from app.runtime import Runtime
from app.settings import Settings, settings_from_environment


class Workers:
    """Two dramatiq Workers on one broker: one for deliveries, one for runs.

    A dramatiq Worker's threads serve all its queues from one pool, so runs (minutes each) would hold
    every thread while acknowledgements wait; apart, a burst of runs never delays an answer.
    """

    def __init__(self, workers: list[dramatiq.Worker]) -> None:
        self.workers = workers

    def stop(self, timeout: int = 30_000) -> None:
        for worker in self.workers:
            worker.stop(timeout=timeout)
            # dramatiq leaves a stopped Worker's hook on the broker; a worker started again adds its own.
            worker.broker.middleware[:] = [m for m in worker.broker.middleware
                                           if getattr(m, "worker", None) is not worker]


class _TwoWorkersMeantFilter(logging.Filter):
    """dramatiq warns when a second Worker adds its own per-Worker hook to the broker; ours are two on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("You're adding a middleware of the same type twice")
                    and "_WorkerMiddleware" in message)


logging.getLogger("dramatiq.broker.RedisBroker").addFilter(_TwoWorkersMeantFilter())


def start_worker(
    runtime: Runtime, *, threads: int | None = None, run_threads: int | None = None, poll_ms: int = 250,
    queues: set[str] | None = None,
) -> Workers:
    """Consume `runtime.broker`'s queues (all, or `queues`) with the actors declared on it; the caller stops it.

    `threads` handle deliveries (default DRAFTSMITH_WORKER_THREADS), `run_threads` runs (default
    DRAFTSMITH_RUN_THREADS). `poll_ms` caps how long an idle consumer sleeps between polls (dramatiq's
    worker_timeout), which bounds how late an idle worker notices a new message.
    """
    runtime.broker.get_actor("process_deliveries")  # ActorNotFound, not an idle worker, when none were declared
    pools = [(DELIVERIES_QUEUE, threads or runtime.settings.worker_threads),
             (RUNS_QUEUE, run_threads or runtime.settings.run_threads)]
    started = []
    for queue, count in pools:
        if queues is not None and queue not in queues:
            continue
        worker = dramatiq.Worker(runtime.broker, worker_threads=count, worker_timeout=poll_ms, queues={queue})
        worker.start()
        started.append(worker)
    return Workers(started)


def run_worker(
    settings: Settings,
    *,
    redis_url: str | None = None,
    threads: int | None = None,
    sweep: bool = True,
    stop: threading.Event | None = None,
    niceness: int = 0,
) -> None:
    """Consume until SIGINT/SIGTERM (or `stop` is set): what `draftsmith worker` and `serve` run.

    With `sweep`, this process also re-enqueues deliveries left unprocessed (see app.deliveries.sweeper).
    `niceness` lowers the priority of every thread but the outcome writer, which keeps the
    process's own (see app.deliveries.outcomes for why); agents inherit it from the threads that run them.
    """
    from app.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level, settings.secret_values())
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    runtime = build_runtime(settings, redis_url=redis_url)
    runtime.outcomes.start()  # before renicing: a thread starts at the priority of the one starting it
    if niceness:
        os.nice(niceness)  # this thread only (Linux); dramatiq's threads, started next, inherit it
    worker = start_worker(runtime, threads=threads)
    sweeper = Sweeper(runtime).start() if sweep else None
    try:
        stop.wait()
    finally:
        if sweeper is not None:
            sweeper.stop()
        worker.stop(timeout=30_000)
        runtime.close()


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m app.queue.worker", description=__doc__)
    parser.add_argument("--threads", type=int, default=None, help="worker threads (default DRAFTSMITH_WORKER_THREADS)")
    parser.add_argument("--sweep", action="store_true", help="also run the sweeper in this process")
    parser.add_argument("--niceness", type=int, default=0, help="lower the priority of the threads handling work")
    args = parser.parse_args(argv)
    run_worker(settings_from_environment(), threads=args.threads, sweep=args.sweep, niceness=args.niceness)


if __name__ == "__main__":
    main()
