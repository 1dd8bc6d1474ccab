"""`draftsmith serve` runs the whole app from an empty directory and stops without leaving processes behind."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import time
import uuid

import httpx
import psutil
import pytest

from tests.cli.conftest import DRAFTSMITH, clean_environment
from tests.support.app_server import free_port
from tests.support.databases import _fresh_postgres_url
from tests.support.redis import unauthenticated_reply
from tests.support.webhooks import example

SECRET = "cli-test-webhook-secret"
NO_PASSWORD_WARNING = "REDIS_URL has no password"


def replay(serve, tmp_path, event: str, payload: dict, delivery_id: str) -> subprocess.CompletedProcess:
    path = tmp_path / f"{event}.json"
    path.write_text(json.dumps(payload))
    return subprocess.run(
        [DRAFTSMITH, "replay", str(path), "--event", event, "--delivery-id", delivery_id],
        cwd=serve.directory,  # its .env holds the secret and the port
        env=clean_environment(DRAFTSMITH_PORT=str(serve.port)),
        capture_output=True,
        text=True,
        timeout=30,
    )


def assigned_payload() -> dict:
    payload = example("issues", "assigned")
    payload["installation"] = {"id": 4242, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0Mg=="}
    return payload


@pytest.fixture(scope="module")
def serve(start_shared_serve):
    """One `draftsmith serve` on its embedded default, from a directory whose .env holds only the webhook secret."""
    return start_shared_serve(f"GITHUB_WEBHOOK_SECRET={SECRET}\n")


def test_serve_with_no_configuration_runs_everything_and_processes_a_webhook(serve, tmp_path):
    assert httpx.get(f"{serve.url}/readyz").status_code == 200
    assert serve.children_named("redis-server"), "the embedded Redis runs under serve"
    assert (serve.directory / ".draftsmith" / "draftsmith.db").exists()

    # When: a signed delivery arrives (through `draftsmith replay`, which signs with the .env secret)
    delivery_id = str(uuid.uuid4())
    result = replay(serve, tmp_path, "issues", assigned_payload(), delivery_id)

    # Then: it is accepted, recorded, and a worker process takes it out of `received`
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("202")
    assert serve.wait_for_delivery_status(delivery_id) in ("processed", "ignored")
    assert f"Draftsmith is running at {serve.url}/" in serve.output


def redis_password_file(serve):
    return serve.directory / ".draftsmith" / "redis" / "password"


def test_the_embedded_redis_wants_a_password_that_serve_shows_nowhere(serve):
    password_file = redis_password_file(serve)
    password = password_file.read_text().strip()
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600

    # The console says where the queue is, without the password (by now it also holds a delivery's logs)
    [port] = re.findall(r"embedded Redis at redis://127\.0\.0\.1:(\d+)/0 \(password in \S+password\)", serve.output)
    assert password not in serve.output
    # ...and no process shows it in `ps`
    assert not [p for p in serve.descendants() if password in " ".join(p.cmdline())]

    # A local process that does not know it gets nothing
    assert unauthenticated_reply(int(port), b"KEYS *\r\n").startswith(b"-NOAUTH")


def test_a_restarted_serve_keeps_its_redis_password_and_processes_webhooks(start_serve, tmp_path):
    # Given a serve that made its Redis password, then stopped
    first = start_serve(f"GITHUB_WEBHOOK_SECRET={SECRET}\n")
    password = redis_password_file(first).read_text()
    assert first.stop() == 0

    # When it starts again in the same directory
    serve = start_serve.again(first)

    # Then the password is the same one and its web and workers still reach the queue
    assert redis_password_file(serve).read_text() == password
    delivery_id = str(uuid.uuid4())
    result = replay(serve, tmp_path, "issues", assigned_payload(), delivery_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert serve.wait_for_delivery_status(delivery_id) in ("processed", "ignored")


@pytest.mark.parametrize(
    ("command", "banner"), [("serve", "Draftsmith is running at"), ("worker", "worker process(es) running")]
)
def test_a_redis_url_without_a_password_is_warned_about(start_serve, command, banner):
    process = start_serve("", command=command, wait=False, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    output = process.wait_for_output(banner)
    assert NO_PASSWORD_WARNING in output
    assert "redis://:PASSWORD@" in output  # and how to add one


def test_serve_names_the_missing_github_settings(serve):
    output = serve.output
    assert "GITHUB_APP_ID" in output
    assert "GITHUB_PRIVATE_KEY" in output
    assert "GITHUB_WEBHOOK_SECRET" not in output  # it is set, so it is not reported missing
    assert "GITHUB_APP_ID" in httpx.get(f"{serve.url}/").text


def test_sigterm_stops_every_child_including_redis(start_serve):
    serve = start_serve()
    children = serve.descendants()
    names = " ".join(" ".join(p.cmdline()) for p in children)
    assert "redis-server" in names and "app.web.asgi" in names and "app.queue.worker" in names

    assert serve.stop() == 0

    alive = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    assert "stopped" in serve.output


def test_a_web_process_that_dies_is_restarted(serve):
    [web] = serve.children_named("app.web.asgi")
    os.kill(web.pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while not [p for p in serve.children_named("app.web.asgi") if p.pid != web.pid]:
        assert time.monotonic() < deadline, serve.output
        time.sleep(0.05)
    serve.wait_healthy()
    assert "child exited; restarting" in serve.output


def test_serve_uses_the_configured_redis_and_migrates_the_configured_database(
    start_serve, tmp_path, postgres_server, redis_url
):
    # A fresh PostgreSQL database: serve applies the migrations itself.
    database_url = _fresh_postgres_url(postgres_server)
    serve = start_serve(f"GITHUB_WEBHOOK_SECRET={SECRET}\n", DATABASE_URL=database_url, REDIS_URL=redis_url)
    assert not serve.children_named("redis-server")
    assert NO_PASSWORD_WARNING not in serve.output  # the test Redis's URL carries its password

    delivery_id = str(uuid.uuid4())
    result = replay(serve, tmp_path, "issues", assigned_payload(), delivery_id)

    assert result.returncode == 0, result.stdout + result.stderr
    assert serve.wait_for_delivery_status(delivery_id, database_url) in ("processed", "ignored")
    assert not (serve.directory / ".draftsmith" / "draftsmith.db").exists()


def test_replay_reports_a_refused_delivery(serve, tmp_path):
    path = tmp_path / "ping.json"
    path.write_text("{}")
    result = subprocess.run(
        [DRAFTSMITH, "replay", str(path), "--event", "ping", "--url", f"{serve.url}/api/github/webhooks"],
        cwd=tmp_path,  # no .env here: signed with a different secret
        env=clean_environment(GITHUB_WEBHOOK_SECRET="not-the-secret"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stdout.startswith("401")


def test_worker_refuses_to_run_without_a_shared_redis(tmp_path):
    result = subprocess.run(
        [DRAFTSMITH, "worker"], cwd=tmp_path, env=clean_environment(), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "REDIS_URL" in result.stderr


def test_worker_processes_a_delivery_recorded_while_the_queue_was_down(start_serve, tmp_path, redis_url):
    from datetime import timedelta

    from app.db import make_engine, session_scope
    from app.migrate import upgrade
    from app.models import Delivery, DeliveryPayload, utcnow
    from app.deliveries.records import pack

    # Given: a delivery recorded a minute ago but never enqueued (Redis was down when it arrived)
    database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = make_engine(database_url)
    upgrade(engine)
    delivery_id = str(uuid.uuid4())
    with session_scope(engine) as session:
        body = DeliveryPayload(payload_lz4=pack(json.dumps(assigned_payload()).encode()))
        session.add(body)
        session.flush()
        session.add(Delivery(
            id=delivery_id, event="issues", action="assigned", installation_id=4242,
            received_at=utcnow() - timedelta(minutes=1), payload_id=body.id,
        ))
    engine.dispose()

    # When: `draftsmith worker` runs against the shared Redis and database
    worker = start_serve(
        "", command="worker", wait=False, DATABASE_URL=database_url, REDIS_URL=redis_url,
        DRAFTSMITH_SWEEP_INTERVAL="0.2",
    )

    # Then: its sweeper enqueues the delivery and a worker thread processes it
    assert worker.wait_for_delivery_status(delivery_id, database_url, timeout=30) in ("processed", "ignored")
    assert NO_PASSWORD_WARNING not in worker.output
    assert worker.stop() == 0
