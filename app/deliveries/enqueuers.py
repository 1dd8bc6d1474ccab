"""Enqueuers: hand recorded delivery ids to the workers as process_deliveries messages, directly or through dramatiq.

Two behind one protocol. RedisEnqueuer is the web processes' fast path: it speaks RESP2 on one socket
and runs dramatiq's own `dispatch.lua` by its SHA1, encoding messages exactly as dramatiq's
Message.encode() and RedisBroker.enqueue do, so a web process imports neither redis-py nor dramatiq
(tests/deliveries/test_enqueuers.py checks that dramatiq consumes them). BrokerEnqueuer goes through
the process's dramatiq broker: for brokers other than a plain TCP Redis, and for the sweeper.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

from app.queue.names import NAMESPACE

# Must match the actor declared in app.queue.actors (tested).
ACTOR_NAME = "process_deliveries"
QUEUE_NAME = "default"
# Deliveries per message. A burst becomes a few messages instead of one per delivery (each cost the
# worker a fetch, an ack and two writes), while a message stays small enough that the workers
# still share a burst between them.
IDS_PER_MESSAGE = 32
# dramatiq's RedisBroker default; only used by maintenance, which enqueueing never runs.
DEAD_MESSAGE_TTL_MS = 86_400_000 * 7

if TYPE_CHECKING:
    import dramatiq

    from app.runtime import Runtime


class Enqueuer(Protocol):
    def enqueue(self, delivery_ids: Sequence[str]) -> None:
        """Enqueue process_deliveries messages for these ids (each once); raises if they may not all be queued."""

    def close(self) -> None: ...


def enqueuer_for(runtime: Runtime) -> Enqueuer:
    """Straight to Redis when the runtime's Redis is a plain TCP URL, else through its broker (a Runtime
    handed a broker of its own, as tests do, or a TLS or unix-socket Redis)."""
    if supports(runtime.redis_url):
        return RedisEnqueuer(runtime.redis_url, heartbeat_timeout_ms=runtime.settings.heartbeat_timeout_seconds * 1000)
    return BrokerEnqueuer(lambda: runtime.broker)


class BrokerEnqueuer:
    """Enqueues through a dramatiq broker, built on first use (`broker` is called each time)."""

    def __init__(self, broker: Callable[[], dramatiq.Broker]) -> None:
        self.broker = broker

    def enqueue(self, delivery_ids: Sequence[str]) -> None:
        from app.queue.broker import enqueue_many

        broker = self.broker()
        actor = broker.get_actor(ACTOR_NAME)  # declared by whoever built the broker
        enqueue_many(broker, [actor.message(batch) for batch in message_batches(delivery_ids)])

    def close(self) -> None:
        pass


class RedisReplyError(Exception):
    """Redis answered a command with an error reply."""


def dispatch_script() -> bytes:
    """dramatiq's dispatch.lua, found without importing dramatiq (its import is what we avoid)."""
    spec = importlib.util.find_spec("dramatiq")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("dramatiq is not installed")
    return (Path(next(iter(spec.submodule_search_locations))) / "brokers" / "redis" / "dispatch.lua").read_bytes()


def supports(redis_url: str | None) -> bool:
    """Plain TCP Redis URLs; others (TLS, unix sockets, redis-py options such as `?password=`) go through redis-py."""
    if not redis_url:
        return False
    parts = urlsplit(redis_url)
    return parts.scheme == "redis" and not parts.query


def message_batches(delivery_ids: Sequence[str]) -> list[list[str]]:
    """The ids, each once, in messages of at most IDS_PER_MESSAGE."""
    unique = list(dict.fromkeys(delivery_ids))
    return [unique[i:i + IDS_PER_MESSAGE] for i in range(0, len(unique), IDS_PER_MESSAGE)]


def encode_message(delivery_ids: Sequence[str], now_ms: int) -> tuple[str, bytes]:
    """(redis_message_id, message bytes) as RedisBroker.enqueue(actor.message(delivery_ids)) would store them."""
    redis_message_id = str(uuid.uuid4())
    data = {
        "queue_name": QUEUE_NAME,
        "actor_name": ACTOR_NAME,
        "args": [list(delivery_ids)],
        "kwargs": {},
        "options": {"redis_message_id": redis_message_id},
        "message_id": str(uuid.uuid4()),
        "message_timestamp": now_ms,
    }
    return redis_message_id, json.dumps(data, separators=(",", ":")).encode()


def _command(*parts: bytes | str | int) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        if not isinstance(part, bytes):
            part = str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class RedisEnqueuer:
    """Enqueues process_deliveries(ids) messages in one round trip per batch; not thread-safe (one recorder thread)."""

    def __init__(self, redis_url: str, *, heartbeat_timeout_ms: int = 60_000, connect_timeout: float = 2.0) -> None:
        parts = urlsplit(redis_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        path = parts.path.strip("/")
        self.db = int(path) if path else 0
        self.heartbeat_timeout_ms = heartbeat_timeout_ms
        self.connect_timeout = connect_timeout
        self.script = dispatch_script()
        self.sha = hashlib.sha1(self.script).hexdigest()
        # dispatch.lua's "enqueue" heartbeats under a broker id, as every RedisBroker does; one per process.
        self.broker_id = str(uuid.uuid4())
        self._sock: socket.socket | None = None
        self._reader = None

    def enqueue(self, delivery_ids: Sequence[str]) -> None:
        """Enqueue the ids in messages of IDS_PER_MESSAGE; raises (and drops the connection) if Redis did not take them all."""
        if not delivery_ids:
            return
        try:
            self._connected()
            now = int(time.time() * 1000)
            commands = []
            for batch in message_batches(delivery_ids):
                redis_message_id, data = encode_message(batch, now)
                commands.append(self._evalsha(now, redis_message_id, data))
            replies = self._pipeline(commands)
            retry = [c for c, r in zip(commands, replies) if isinstance(r, RedisReplyError) and str(r).startswith("NOSCRIPT")]
            if retry:  # Redis restarted (or flushed its scripts): load ours once, then send those again
                self._pipeline([_command("SCRIPT", "LOAD", self.script)])
                replies = self._pipeline(retry)
            for reply in replies:
                if isinstance(reply, RedisReplyError):
                    raise reply
        except BaseException:
            self.close()
            raise

    def _evalsha(self, now_ms: int, redis_message_id: str, data: bytes) -> bytes:
        # dispatch(keys=[namespace], args=[command, timestamp, queue, worker_id, heartbeat_timeout,
        #          dead_message_ttl, do_maintenance, max_unpack_size, message_id, message_data])
        return _command(
            "EVALSHA", self.sha, 1, NAMESPACE, "enqueue", now_ms, QUEUE_NAME, self.broker_id,
            self.heartbeat_timeout_ms, DEAD_MESSAGE_TTL_MS, 0, 0, redis_message_id, data,
        )

    def _connected(self) -> None:
        if self._sock is not None:
            return
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(10)
        self._sock, self._reader = sock, sock.makefile("rb")
        setup = []
        if self.password is not None:
            setup.append(_command("AUTH", *([self.username] if self.username else []), self.password))
        if self.db:
            setup.append(_command("SELECT", self.db))
        for reply in self._pipeline(setup):
            if isinstance(reply, RedisReplyError):
                raise reply

    def _pipeline(self, commands: list[bytes]) -> list:
        if not commands:
            return []
        self._sock.sendall(b"".join(commands))
        return [self._read() for _ in commands]

    def _read(self):
        line = self._reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RedisReplyError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self._reader.read(size + 2)
            if len(data) != size + 2:
                raise ConnectionError("Redis closed the connection")
            return data[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._read() for _ in range(size)]
        raise ConnectionError(f"unexpected Redis reply {line[:20]!r}")

    def close(self) -> None:
        sock, self._sock, reader, self._reader = self._sock, None, self._reader, None
        for thing in (reader, sock):
            if thing is not None:
                try:
                    thing.close()
                except OSError:
                    pass
