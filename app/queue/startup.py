"""What a process that runs or sends our actors builds first: its broker, its Runtime, the actors on both."""

from __future__ import annotations

from app.queue.actors import declare_actors
from app.queue.broker import make_broker
from app.runtime import Runtime
from app.settings import Settings


def build_runtime(settings: Settings, *, redis_url: str | None = None, **parts) -> Runtime:
    """The Runtime of a process that runs or sends our actors: a RedisBroker for `redis_url` (default
    settings.redis_url; serve passes the embedded Redis's), our actors declared on it running with
    this Runtime. `parts` go to Runtime (engine, github). Nothing connects yet.
    """
    url = redis_url or settings.redis_url
    if not url:
        raise ValueError("no Redis URL: start the embedded Redis first and pass its URL")
    broker = make_broker(url, heartbeat_timeout_ms=settings.heartbeat_timeout_seconds * 1000)
    runtime = Runtime(settings, broker=broker, redis_url=url, **parts)
    declare_actors(broker, runtime)
    return runtime
