"""A Redis outage never loses a verified delivery: it is recorded, answered 202, and swept in later."""

from __future__ import annotations

import time
import uuid

from app.deliveries.sweeper import sweep
from app.queue.embedded_redis import EmbeddedRedis
from tests.support.webhooks import example


def test_a_delivery_during_a_redis_outage_is_processed_once_redis_is_back(make_draftsmith, tmp_path):
    # Given the app running on a Redis of its own, which then goes down
    redis = EmbeddedRedis(tmp_path / "redis", persist=False).start()
    try:
        app = make_draftsmith(redis_url=redis.url)
        redis.kill()

        # When GitHub delivers an event
        delivery_id = str(uuid.uuid4())
        response = app.post_webhook("installation", example("installation", "created"), delivery_id=delivery_id)

        # Then it is still accepted and recorded, and (the enqueue runs after the answer) marked as never enqueued
        assert response.status_code == 202
        deadline = time.monotonic() + 10
        while (stored := app.delivery(delivery_id)).enqueued_at is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stored.status == "received" and stored.enqueued_at is None
        ready = app.client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["redis"] != "ok"

        # And when Redis is back, the sweeper enqueues it and the worker processes it
        redis.start()
        assert sweep(app.runtime, grace=0) == 1
        app.join(timeout=30)
        assert app.delivery(delivery_id).status == "processed"
        assert sweep(app.runtime, grace=0) == 0
    finally:
        redis.stop()
