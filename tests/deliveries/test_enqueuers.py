"""Both enqueuers put in Redis what dramatiq's own workers consume; the direct one needs no dramatiq to do it."""

from __future__ import annotations

import pytest
import redis as redis_lib

from app.deliveries.enqueuers import IDS_PER_MESSAGE, BrokerEnqueuer, RedisEnqueuer, supports
from app.queue.actors import declare_actors
from app.queue.broker import make_broker


def _consume(broker, expected: int) -> list:
    consumer = broker.consume("default", prefetch=expected + 1, timeout=1000)
    messages = []
    for message in consumer:
        if message is None:
            break
        messages.append(message)
        consumer.ack(message)
        if len(messages) == expected:
            break
    consumer.close()
    return messages


@pytest.mark.parametrize("kind", ["direct", "broker"])
def test_enqueued_deliveries_are_read_by_dramatiq_as_process_deliveries_messages(redis_url, kind):
    broker = make_broker(redis_url)
    actor = declare_actors(broker).process_deliveries
    enqueuer = RedisEnqueuer(redis_url) if kind == "direct" else BrokerEnqueuer(lambda: broker)
    ids = ["d-1", "d-\"2\"-ünïcode"] + [f"burst-{n}" for n in range(IDS_PER_MESSAGE)]
    try:
        enqueuer.enqueue(ids + ["d-1"])  # the same id twice in a batch travels once

        messages = _consume(broker, 2)
    finally:
        enqueuer.close()
        broker.close()

    assert [(m.actor_name, m.queue_name, m.args) for m in messages] == [
        (actor.actor_name, actor.queue_name, (ids[:IDS_PER_MESSAGE],)),
        (actor.actor_name, actor.queue_name, (ids[IDS_PER_MESSAGE:],)),
    ]
    assert len({m.message_id for m in messages}) == 2


def test_enqueueing_survives_redis_forgetting_the_script_and_dropping_the_connection(redis_url):
    # Given an enqueuer that has already loaded dramatiq's script on its connection
    broker = make_broker(redis_url)
    declare_actors(broker)
    enqueuer = RedisEnqueuer(redis_url)
    admin = redis_lib.Redis.from_url(redis_url)
    try:
        enqueuer.enqueue(["before"])

        # When Redis forgets its scripts (as after a restart) and closes our connection
        admin.script_flush()
        admin.client_kill_filter(_type="normal", skipme=True)
        try:
            enqueuer.enqueue(["lost-with-the-connection"])
        except (ConnectionError, OSError):
            pass  # the recorder marks such a batch for the sweeper; the next one must work again
        enqueuer.enqueue(["after"])

        # Then the next batches are enqueued all the same
        args = [m.args[0][0] for m in _consume(broker, 3)]
    finally:
        enqueuer.close()
        admin.close()
        broker.close()

    assert args[0] == "before" and args[-1] == "after"


def test_only_plain_redis_urls_skip_redis_py():
    # The direct enqueuer reads a password from the user part only; redis-py also takes `?password=`.
    assert supports("redis://:secret@127.0.0.1:6379/0")
    assert not supports("redis://127.0.0.1:6379/0?password=secret")
    assert not supports("rediss://:secret@queue:6380/0")
