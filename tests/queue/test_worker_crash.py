"""A worker killed in the middle of a delivery loses nothing: after a restart the delivery is processed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid

import redis as redis_lib
from sqlmodel import Session

from app.deliveries.stores import sql
from app.deliveries.sweeper import sweep
from app.models import Installation
from app.queue.actors import DELIVERIES_QUEUE
from app.queue.broker import NAMESPACE
from tests.support.webhooks import example


def _worker_process(settings, *args: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        GITHUB_APP_ID=str(settings.github_app_id),
        GITHUB_PRIVATE_KEY_PATH=str(settings.github_private_key_path),
        GITHUB_WEBHOOK_SECRET=settings.github_webhook_secret.get_secret_value(),
        GITHUB_API_URL=settings.github_api_url,
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        DRAFTSMITH_DATA_DIR=str(settings.data_dir),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "app.queue.worker", "--threads", "1", *args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def test_a_worker_killed_mid_delivery_is_made_good_after_restart(make_draftsmith):
    # Given a recorded delivery, and the database write lock held so its processing cannot finish
    app = make_draftsmith(worker=False)
    payload = example("installation", "created")
    delivery_id = str(uuid.uuid4())
    assert app.post_webhook("installation", payload, delivery_id=delivery_id).status_code == 202
    db_path = app.settings.database_url.split("sqlite:///", 1)[1]
    lock = sqlite3.connect(db_path, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    queue = redis_lib.Redis.from_url(app.settings.redis_url)

    # When a worker process takes the message and is killed while processing it
    worker = _worker_process(app.settings)
    try:
        # (enqueued after the 202, so wait for it to be in Redis, then out of the queue: taken, not acknowledged)
        _wait(lambda: queue.hlen(f"{NAMESPACE}:{DELIVERIES_QUEUE}.msgs") == 1
              and queue.llen(f"{NAMESPACE}:{DELIVERIES_QUEUE}") == 0, 30, "worker never took the message")
        time.sleep(0.3)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        lock.execute("ROLLBACK")
        lock.close()
    assert app.delivery(delivery_id).status == "received"

    # Then after a worker starts again and the sweeper finds the stale delivery, it is processed once
    restarted = _worker_process(app.settings)
    try:
        assert sweep(app.runtime, stale_after=0) == 1
        _wait(lambda: app.delivery(delivery_id).status == "processed", 30, "delivery never processed")
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(30)
    assert app.delivery(delivery_id).attempts == 1
    with Session(app.engine) as session:
        assert session.get(Installation, payload["installation"]["id"]) is not None
    queue.close()



def test_the_sweeper_sends_nothing_twice_while_a_backlog_drains_and_a_lost_message_after(make_draftsmith):
    # Given two recorded deliveries whose message waits in Redis, no worker having reached it yet,
    # and one of them marked never enqueued (as when Redis refused it)
    app = make_draftsmith(worker=False)
    queued, refused = str(uuid.uuid4()), str(uuid.uuid4())
    for delivery_id in (queued, refused):
        assert app.post_webhook("installation", example("installation", "created"), delivery_id=delivery_id).status_code == 202
    queue = redis_lib.Redis.from_url(app.settings.redis_url)
    waiting = f"{NAMESPACE}:{DELIVERIES_QUEUE}"
    _wait(lambda: queue.llen(waiting) >= 1, 30, "never enqueued")
    time.sleep(0.2)  # the enqueuer's linger: both ids sent
    sql.mark_not_enqueued(app.engine, [refused])
    messages = queue.llen(waiting)

    # When the sweeper runs with the queued one long past the heartbeat timeout (stale_after=0)
    first = sweep(app.runtime, stale_after=0, grace=0)

    # Then it sends only the one never enqueued: the other is waiting in the backlog, not lost
    assert first == 1 and queue.llen(waiting) == messages + 1

    # And once the queue holds nothing (Redis lost it), the next sweep sends both again
    queue.delete(waiting, f"{waiting}.msgs")
    assert sweep(app.runtime, stale_after=0, grace=0) == 2
    queue.close()


def test_a_queued_run_whose_message_died_with_its_worker_is_sent_again_after_the_heartbeat_timeout(make_draftsmith):
    # Given a run queued longer than the heartbeat timeout, whose message no worker will reach (a worker
    # killed with the message prefetched holds it; dramatiq hands such messages back only much later), and
    # whose intake died before releasing it (released after three heartbeat timeouts)
    from datetime import timedelta

    from app.deliveries.sweeper import recover_runs
    from app.models import utcnow
    from app.queue.actors import RUNS_QUEUE
    from app.tasks.service import TaskService

    app = make_draftsmith(worker=False, DRAFTSMITH_HEARTBEAT_TIMEOUT=20)
    tasks = TaskService(app.engine)
    started = tasks.create(installation_id=1, repo_full_name="octo/demo", issue_number=4, requester="alice",
                           trigger="assignment", agent="command")
    tasks.update_run(started.run.id, queued_at=utcnow() - timedelta(seconds=90))
    queue = redis_lib.Redis.from_url(app.settings.redis_url)
    waiting = f"{NAMESPACE}:{RUNS_QUEUE}"

    # When the sweeper looks, with no run message waiting in Redis, it sends the run again, once
    assert recover_runs(app.runtime) == 1 and queue.llen(waiting) == 1
    assert recover_runs(app.runtime) == 0

    # And a run merely waiting behind others in the queue is left alone
    other = tasks.create(installation_id=1, repo_full_name="octo/demo", issue_number=5, requester="alice",
                         trigger="assignment", agent="command")
    tasks.update_run(other.run.id, queued_at=utcnow() - timedelta(seconds=90))
    assert recover_runs(app.runtime) == 0 and queue.llen(waiting) == 1
    queue.close()
