"""The embedded Redis answers only clients that know its password, which lives in a 0600 file and survives restarts."""

from __future__ import annotations

import io
import stat

import redis as redis_lib
import structlog

from app.deliveries.enqueuers import QUEUE_NAME, RedisEnqueuer
from app.logs import configure_logging, get_logger
from app.queue.broker import make_broker, messages_waiting
from app.queue.embedded_redis import PASSWORD_FILE, EmbeddedRedis
from app.settings import Settings
from tests.support.redis import unauthenticated_reply


def test_a_client_without_the_password_is_refused(redis_server):
    assert unauthenticated_reply(redis_server.port, b"PING\r\n").startswith(b"-NOAUTH")
    assert unauthenticated_reply(redis_server.port, b"KEYS *\r\n").startswith(b"-NOAUTH")

    client = redis_lib.Redis.from_url(redis_server.url)
    try:
        assert client.ping()
    finally:
        client.close()


def test_the_password_file_is_private_and_survives_a_restart_with_the_queued_jobs(tmp_path):
    directory = tmp_path / "redis"
    # Given a delivery queued in an embedded Redis that is then stopped
    with EmbeddedRedis(directory) as first:
        enqueuer = RedisEnqueuer(first.url)
        enqueuer.enqueue(["queued-before-the-restart"])
        enqueuer.close()
    password_file = directory / PASSWORD_FILE
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text()

    # When it starts again on the same directory (another port, as `serve` picks one each start)
    with EmbeddedRedis(directory) as second:
        broker = make_broker(second.url)
        try:
            # Then the same password lets clients in, and the delivery still waits
            assert messages_waiting(broker, QUEUE_NAME) == 1
        finally:
            broker.close()
    assert password_file.read_text() == password
    assert second.password == first.password


def test_a_logged_redis_url_shows_no_password(redis_server):
    saved = structlog.get_config()
    buffer = io.StringIO()
    try:
        configure_logging("console", "info", Settings(REDIS_URL=redis_server.url).secret_values())
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=buffer))

        get_logger().warning("cannot reach the queue", url=redis_server.url)
    finally:
        structlog.configure(**saved)

    assert "cannot reach the queue" in buffer.getvalue() and "@127.0.0.1:" in buffer.getvalue()
    assert redis_server.password not in buffer.getvalue()
