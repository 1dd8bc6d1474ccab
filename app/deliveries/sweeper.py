"""The sweeper: re-enqueue deliveries never processed, end runs whose worker died, have lost deliveries sent again."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from app.deliveries.enqueuers import BrokerEnqueuer
from app.deliveries.stores import sql
from app.logs import get_logger
from app.models import utcnow

log = get_logger(component="sweeper")


def sweep(runtime, *, stale_after: float | None = None, grace: float = 5.0) -> int:
    """Enqueue every delivery still `received` that was never enqueued (older than `grace` seconds,
    so we don't race ingress) or was enqueued more than `stale_after` seconds ago (default: the
    heartbeat timeout, after which a worker holding it is presumed dead), the latter only while no
    delivery message waits in the queue. Returns how many.

    Safe to run from many processes at once: process_deliveries skips deliveries already handled.
    """
    from app.queue.actors import DELIVERIES_QUEUE
    from app.queue.broker import messages_waiting

    stale: timedelta | None = timedelta(
        seconds=runtime.settings.heartbeat_timeout_seconds if stale_after is None else stale_after)
    if messages_waiting(runtime.broker, DELIVERIES_QUEUE):
        # Workers are still draining a backlog: a delivery enqueued longer ago than the heartbeat
        # timeout is most likely waiting in it, not lost, and sending it again would only queue a
        # duplicate. Deliveries never enqueued are still swept now; stale ones once the backlog is gone.
        stale = None
    ids = sql.unprocessed(runtime.engine, now=utcnow(), stale_after=stale, grace=timedelta(seconds=grace))
    if not ids:
        return 0
    BrokerEnqueuer(lambda: runtime.broker).enqueue(ids)
    sql.mark_enqueued(runtime.engine, ids)
    log.info("swept_deliveries", count=len(ids))
    return len(ids)


def recover_runs(runtime) -> int:
    """Fail (or re-queue once) runs whose heartbeat went silent, and report it on GitHub. Returns how many."""
    import asyncio

    from app.engines.lifecycle import (recover_dead_runs, release_abandoned_runs, report_unreported_ends,
                                       requeue_stranded_runs)
    from app.queue.actors import RUNS_QUEUE
    from app.queue.broker import messages_waiting

    if runtime.github is None:  # nothing can be reported yet; the runs stay until the App is configured
        return 0
    recovered = asyncio.run(recover_dead_runs(runtime))
    if recovered:
        log.info("recovered_dead_runs", count=recovered)
    release_abandoned_runs(runtime)
    requeued = 0
    if not messages_waiting(runtime.broker, RUNS_QUEUE):
        # A run queued longer than the heartbeat timeout with no slot request waiting has none a live worker
        # will reach: Redis lost it, or a dead worker holds it (dramatiq hands those back only after its own
        # heartbeat timeout, at a random maintenance pass). While requests wait, they start the queue's runs.
        requeued = requeue_stranded_runs(runtime, timedelta(seconds=runtime.settings.heartbeat_timeout_seconds))
    if requeued:
        log.info("requeued_stranded_runs", count=requeued)
    reported = asyncio.run(report_unreported_ends(runtime))
    if reported:
        log.info("reported_unreported_ends", count=reported)
    return recovered + requeued + reported


_last_prune: dict[int, float] = {}


def prune_old_rows(runtime) -> dict[str, int]:
    """Retention, at most once an hour per process (app.retention)."""
    import time

    from app import retention

    now = time.monotonic()
    if now - _last_prune.get(id(runtime), -1e9) < retention.PRUNE_EVERY.total_seconds():
        return {}
    _last_prune[id(runtime)] = now
    pruned = retention.prune(runtime.engine, days=runtime.settings.retention_days,
                             audit_days=runtime.settings.audit_retention_days)
    if any(pruned.values()):
        log.info("pruned_old_rows", **pruned)
    return pruned


def recover_lost_deliveries(runtime) -> int:
    """Have GitHub redeliver what it could not hand over (app.deliveries.recovery). Returns how many."""
    from app.deliveries.recovery import recover_deliveries

    outcome = recover_deliveries(runtime)
    return len(outcome.redelivered) if outcome is not None else 0


def _guarded(job, runtime) -> None:
    try:
        job(runtime)
    except Exception as exc:  # Redis, the database or GitHub down: try again next round
        log.warning("sweep_failed", job=job.__name__, error_type=type(exc).__name__)


def _sweep_all(runtime) -> None:
    # Each job on its own: a failing GitHub call while reporting a dead run must not stop delivery sweeps.
    for job in (sweep, recover_runs, prune_old_rows):
        _guarded(job, runtime)


class _RecoverySchedule:
    """Delivery recovery on the sweeper's ticks, every `interval` seconds (0: never). The first is due at
    the first tick, one sweep interval after start-up rather than at once: under `serve` the web
    processes start beside this one, and a redelivery GitHub sends before they listen fails again."""

    def __init__(self, interval: float, first_after: float = 0.0) -> None:
        self.interval = interval
        self._due = time.monotonic() + first_after

    def tick(self, runtime) -> None:
        if self.interval <= 0 or time.monotonic() < self._due:
            return
        self._due = time.monotonic() + self.interval
        _guarded(recover_lost_deliveries, runtime)


class Sweeper:
    """Calls sweep() every `interval` seconds, and delivery recovery every `recovery_interval`, on a daemon
    thread until stopped; errors are logged."""

    def __init__(self, runtime, interval: float | None = None, recovery_interval: float | None = None) -> None:
        self.runtime = runtime
        self.interval = interval if interval is not None else runtime.settings.sweep_interval_seconds
        self.recovery = _RecoverySchedule(
            recovery_interval if recovery_interval is not None else runtime.settings.recovery_interval_seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Sweeper:
        self._thread = threading.Thread(target=self._loop, name="sweeper", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        # Runs a crash left "running" are ended at start-up too, not only after the first interval.
        try:
            recover_runs(self.runtime)
        except Exception as exc:
            log.warning("sweep_failed", job="recover_runs", error_type=type(exc).__name__)
        while not self._stop.wait(self.interval):
            _sweep_all(self.runtime)
            self.recovery.tick(self.runtime)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


def run_sweeper(settings, *, stop: threading.Event | None = None) -> None:
    """Sweep every settings.sweep_interval_seconds until SIGINT/SIGTERM (what `python -m app.deliveries.sweeper` runs)."""
    import signal

    from app.logs import configure_logging
    from app.queue.startup import build_runtime

    configure_logging(settings.log_format, settings.log_level, settings.secret_values())
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    runtime = build_runtime(settings)
    # This loop sweeps at once, so recovery waits one interval (see _RecoverySchedule).
    recovery = _RecoverySchedule(settings.recovery_interval_seconds, first_after=settings.sweep_interval_seconds)
    try:
        while not stop.is_set():
            _sweep_all(runtime)
            recovery.tick(runtime)
            stop.wait(runtime.settings.sweep_interval_seconds)
    finally:
        runtime.close()


if __name__ == "__main__":
    from app.settings import settings_from_environment

    run_sweeper(settings_from_environment())
