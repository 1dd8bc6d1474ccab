"""The dramatiq broker (Redis) with our middleware, built once per process and passed down."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import uuid4

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis
from dramatiq.middleware import default_middleware
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

from app.queue.middleware import LogContext
from app.queue.names import NAMESPACE

DEFAULT_QUEUE = "default"


def make_broker(redis_url: str, *, heartbeat_timeout_ms: int = 60_000) -> RedisBroker:
    """A RedisBroker for `redis_url`; constructing it does not connect.

    Redis errors must surface fast: ingress records a delivery first and only logs a failed
    enqueue, so redis-py's default of retrying a refused connection with backoff would just add
    seconds to every answer while Redis is down.
    """
    # No AsyncIO middleware: no actor is async (app.queue.actors runs a loop per thread), and its loop thread,
    # not a daemon, would be started again by each Worker and outlive the process's shutdown.
    middleware = [m() for m in default_middleware] + [LogContext()]
    return RedisBroker(
        url=redis_url,
        namespace=NAMESPACE,
        middleware=middleware,
        heartbeat_timeout=heartbeat_timeout_ms,
        socket_connect_timeout=2,
        retry=Retry(NoBackoff(), 0),
    )


def enqueue_many(broker: dramatiq.Broker, messages: Sequence[dramatiq.Message]) -> None:
    """Enqueue several messages in one Redis round trip (one pipeline) instead of one per message.

    This mirrors RedisBroker.enqueue (fresh redis_message_id, middleware hooks, the dispatch
    script) but sends every script call in one pipeline, by EVALSHA: calling the registered
    Script on a pipeline would make redis-py send a SCRIPT EXISTS round trip first, every time.
    Other brokers enqueue one by one. (Web processes use app.deliveries.enqueuers, which needs neither.)
    """
    if not messages:
        return
    if not isinstance(broker, RedisBroker):
        for message in messages:
            broker.enqueue(message)
        return
    copies = [m.copy(options={"redis_message_id": str(uuid4())}) for m in messages]
    for message in copies:
        broker.emit_before("enqueue", message, None)
    dispatch = broker.scripts["dispatch"]
    calls = []
    for message in copies:
        args = [
            "enqueue",
            current_millis(),
            message.queue_name,
            broker.broker_id,
            broker.heartbeat_timeout,
            broker.dead_message_ttl,
            0,  # no maintenance from the ingress path; workers do it
            broker._max_unpack_size(),
            message.options["redis_message_id"],
            message.encode(),
        ]
        calls.append(args)
    try:
        _evalsha_all(broker, dispatch.sha, calls)
    except NoScriptError:
        # Redis restarted or flushed its scripts: load the script once, then send them again (a
        # message enqueued twice is harmless: process_deliveries skips what is already handled).
        broker.client.script_load(dispatch.script)
        _evalsha_all(broker, dispatch.sha, calls)
    for message in copies:
        broker.emit_after("enqueue", message, None)


def _evalsha_all(broker: RedisBroker, sha: str, calls: list[list]) -> None:
    with broker.client.pipeline(transaction=False) as pipe:
        for args in calls:
            pipe.evalsha(sha, 1, broker.namespace, *args)
        pipe.execute()


def messages_waiting(broker: dramatiq.Broker, queue_name: str) -> int:
    """Messages in `queue_name` that no worker has taken yet (Redis only; 0 for other brokers).
    Unlike queue_depths, it leaves out messages a worker holds, dead or alive."""
    if not isinstance(broker, RedisBroker):
        return 0
    return int(broker.client.llen(f"{broker.namespace}:{queue_name}"))


def queue_depths(broker: dramatiq.Broker) -> dict[str, int]:
    """Messages waiting in each declared queue (Redis only; empty for other brokers)."""
    if not isinstance(broker, RedisBroker):
        return {}
    return {name: int(broker.do_qsize(name)) for name in sorted(broker.get_declared_queues())}
