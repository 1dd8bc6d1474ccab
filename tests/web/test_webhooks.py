"""Webhook ingress: what GitHub (or an impostor) sees when it posts to /api/github/webhooks."""

from __future__ import annotations

import json
import socket
import uuid

from sqlalchemy import func, select
from sqlmodel import Session

from app.deliveries.records import unpack
from app.models import Delivery, DeliveryPayload, Installation
from app.web.webhooks import MAX_BODY_BYTES
from tests.support.webhooks import encode, example


def _count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Delivery)).scalar_one()


def test_missing_or_wrong_signature_is_refused_and_nothing_is_stored(make_draftsmith):
    app = make_draftsmith()
    payload = example("issues", "opened")

    wrong = app.post_webhook("issues", payload, secret="not-the-secret")
    missing = app.post_webhook("issues", payload, headers={"X-Hub-Signature-256": ""})
    sha1_only = app.post_webhook("issues", payload, headers={"X-Hub-Signature-256": "sha1=abc"})

    assert [wrong.status_code, missing.status_code, sha1_only.status_code] == [401, 401, 401]
    assert _count(app.engine) == 0


def test_a_body_tampered_after_signing_is_refused(make_draftsmith):
    app = make_draftsmith()
    body = json.dumps(example("issues", "opened")).encode()
    from tests.support.webhooks import signed_headers

    headers = signed_headers(body, "issues", app.settings.github_webhook_secret.get_secret_value())
    response = app.client.post("/api/github/webhooks", content=body.replace(b'"opened"', b'"closed"'), headers=headers)

    assert response.status_code == 401
    assert _count(app.engine) == 0


def _raw_post(port: int, head: bytes, chunks) -> bytes:
    """Send a request by hand (httpx won't lie about Content-Length) and return the raw answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and hung up before reading it all: what we want
        return sock.recv(4096)


def test_a_declared_oversize_body_gets_413_without_being_read(make_draftsmith):
    app = make_draftsmith()
    head = (
        b"POST /api/github/webhooks HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: issues\r\n"
        b"X-GitHub-Delivery: big\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
    )
    # Only 1 KiB of the promised 25 MiB is ever sent; the answer must not wait for the rest.
    answer = _raw_post(app.port, head, [b"{" + b" " * 1023])

    assert answer.startswith(b"HTTP/1.1 413")
    assert _count(app.engine) == 0


def test_an_undeclared_oversize_body_is_cut_off_at_the_cap(make_draftsmith):
    app = make_draftsmith()
    head = (
        b"POST /api/github/webhooks HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: issues\r\n"
        b"X-GitHub-Delivery: big-chunked\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    piece = b" " * (1024 * 1024)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    answer = _raw_post(app.port, head, [chunk] * 27 + [b"0\r\n\r\n"])

    assert answer.startswith(b"HTTP/1.1 413")
    assert _count(app.engine) == 0


def test_signed_but_not_json_is_a_400(make_draftsmith):
    app = make_draftsmith()

    refused = [
        app.post_webhook("issues", body).status_code
        for body in (
            b"this is not json",
            b"[1, 2, 3]",
            b'{"action": "opened", "issue": {"title": "cut off',
            b'{"action": "opened"} and then some',
            # JSON is UTF-8: a byte that is not, in a string ingress itself does not read
            b'{"action": "opened", "issue": {"title": "caf\xe9"}}',
        )
    ]

    assert refused == [400] * 5
    assert _count(app.engine) == 0


def test_ping_is_answered_200(make_draftsmith):
    app = make_draftsmith()

    response = app.post_webhook("ping", example("ping"))

    assert response.status_code == 200
    assert _count(app.engine) == 0


def test_a_delivery_is_recorded_before_the_answer_then_processed(make_draftsmith, database_url):
    # Given an app that is not consuming yet, so we can see the record the answer promised
    app = make_draftsmith(database_url=database_url, worker=False)
    payload = example("installation", "created")
    delivery_id = str(uuid.uuid4())

    # When GitHub delivers an installation event
    response = app.post_webhook("installation", payload, delivery_id=delivery_id)

    # Then it is answered 202 with the delivery already stored
    assert response.status_code == 202
    stored = app.delivery(delivery_id)
    assert (stored.event, stored.action, stored.status) == ("installation", "created", "received")
    assert stored.installation_id == payload["installation"]["id"]
    with Session(app.engine) as session:
        body = session.get(DeliveryPayload, session.get(Delivery, delivery_id).payload_id)
        assert unpack(body.payload_lz4) == encode(payload)  # byte for byte

    # And once a worker runs, it is routed and marked processed
    app.start_worker()
    app.join()
    assert app.delivery(delivery_id).status == "processed"


def test_a_redelivery_is_accepted_but_does_nothing_twice(make_draftsmith, database_url):
    app = make_draftsmith(database_url=database_url)
    payload = example("installation", "created")
    delivery_id = str(uuid.uuid4())

    first = app.post_webhook("installation", payload, delivery_id=delivery_id)
    app.join()
    processed_at = app.delivery(delivery_id).processed_at
    again = app.post_webhook("installation", payload, delivery_id=delivery_id)
    app.join()

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["duplicate"] is True
    assert _count(app.engine) == 1
    after = app.delivery(delivery_id)
    assert after.attempts == 1 and after.processed_at == processed_at


def test_an_event_nobody_handles_is_marked_ignored(make_draftsmith):
    app = make_draftsmith()
    delivery_id = str(uuid.uuid4())

    app.post_webhook("star", {"action": "created", "starred_at": None}, delivery_id=delivery_id)
    app.join()

    assert app.delivery(delivery_id).status == "ignored"


def test_a_body_the_worker_cannot_parse_fails_that_delivery_alone_with_the_reason(make_draftsmith):
    # Given an app whose worker starts once both deliveries are recorded (so one message carries both)
    app = make_draftsmith(worker=False)
    unparsable, fine = str(uuid.uuid4()), str(uuid.uuid4())

    # When one delivery is well-formed JSON with a number too large for a double (accepted, then refused
    # by the worker's parser) and the other is ordinary
    answers = [
        app.post_webhook("star", b'{"action": "created", "n": 1e400}', delivery_id=unparsable),
        app.post_webhook("star", {"action": "created", "starred_at": None}, delivery_id=fine),
    ]
    app.start_worker()
    app.join()

    # Then both were accepted, the unparsable one failed with the parser's reason, and the other was handled
    assert [a.status_code for a in answers] == [202, 202]
    failed = app.delivery(unparsable)
    assert failed.status == "failed" and "JSONDecodeError" in failed.error
    assert app.delivery(fine).status == "ignored"


def test_an_event_from_an_unknown_installation_creates_it(make_draftsmith):
    app = make_draftsmith()
    payload = example("issues", "opened")
    payload["installation"] = {"id": 4242, "node_id": "x"}

    app.post_webhook("issues", payload)
    app.join()

    from sqlmodel import Session

    with Session(app.engine) as session:
        assert session.get(Installation, 4242) is not None


def test_while_the_secret_rotates_both_secrets_are_accepted_and_links_signed_with_either_open(make_draftsmith, tmp_path):
    from tests.support.app_server import offline_github_env

    from app.tasks.links import task_token

    env = offline_github_env(tmp_path)
    env["GITHUB_WEBHOOK_SECRET"] = "the-new-one, the-old-one"
    app = make_draftsmith(env, worker=False)

    by_new = app.post_webhook("issues", example("issues", "opened"), secret="the-new-one")
    by_old = app.post_webhook("issues", example("issues", "opened"), secret="the-old-one")
    by_neither = app.post_webhook("issues", example("issues", "opened"), secret="the-new-one, the-old-one")
    assert [by_new.status_code, by_old.status_code, by_neither.status_code] == [202, 202, 401]
    assert _count(app.engine) == 2

    # A task page link signed before the rotation still opens; one signed by nobody does not
    from app.tasks.service import TaskService

    task = TaskService(app.engine).create(installation_id=1, repo_full_name="octo/demo", issue_number=1,
                                          requester="alice", trigger="assignment").task
    assert app.settings.signing_secret == "the-new-one"
    for secret in ("the-new-one", "the-old-one"):
        assert app.client.get(f"/api/tasks/{task.id}/logs?token={task_token(secret, task.id)}").status_code == 200
    assert app.client.get(f"/api/tasks/{task.id}/logs?token={task_token('guess', task.id)}").status_code == 404
