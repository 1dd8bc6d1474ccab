"""Event.from_http: plain headers and bytes in, a verified event (or the reason it is not one) out."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from app.events.event import Event, MissingHeaderError, PayloadError, SignatureError
from tests.support.webhooks import encode, example, signed_headers

SECRET = "webhook-secret"


def _signed(payload, event: str = "issues", delivery_id: str = "d-1") -> tuple[dict[str, str], bytes]:
    body = encode(payload)
    return signed_headers(body, event, SECRET, delivery_id), body


@pytest.mark.parametrize(("event", "action"), [("issues", "assigned"), ("issue_comment", "created"),
                                               ("pull_request_review", "submitted"), ("installation", "created")])
def test_a_signed_delivery_reads_as_the_event_a_worker_builds_from_the_stored_body(event, action):
    payload = example(event, action)
    payload["installation"] = {"id": 4242, "node_id": "x"}  # as every App delivery has
    headers, body = _signed(payload, event)

    from_http = Event.from_http(headers, body, SECRET)
    stored = Event(name=event, delivery_id="d-1", payload=json.loads(body))

    assert from_http.body == body
    for read in (lambda e: e.name, lambda e: e.delivery_id, lambda e: e.action, lambda e: e.installation_id,
                 lambda e: e.repo_full_name, lambda e: e.sender_login, lambda e: e.sender_type, lambda e: e.payload):
        assert read(from_http) == read(stored)
    assert (from_http.name, from_http.action) == (event, action)
    assert from_http.installation_id == 4242


@pytest.mark.parametrize("spell", [str.lower, str.title, lambda name: name], ids=["lower", "title", "as GitHub sends"])
def test_header_names_are_found_in_any_case_in_a_plain_dict(spell):
    headers, body = _signed({"action": "created"}, "star", "d-7")

    event = Event.from_http({spell(k): v for k, v in headers.items()}, body, SECRET)

    assert (event.name, event.delivery_id, event.action) == ("star", "d-7", "created")


def test_the_secret_may_be_given_as_bytes():
    headers, body = _signed({"action": "created"})
    assert Event.from_http(headers, body, SECRET.encode()).action == "created"


@pytest.mark.parametrize("change", [
    lambda h, b: (h, b.replace(b"created", b"deleted")),
    lambda h, b: ({k: v for k, v in h.items() if k != "X-Hub-Signature-256"}, b),
    lambda h, b: ({**h, "X-Hub-Signature-256": "sha1=abc"}, b),
    # The signature is checked first: an unsigned request learns nothing about its other headers
    lambda h, b: ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, b),
], ids=["tampered body", "no signature", "sha1 only", "unsigned and no event headers"])
def test_anything_not_signed_with_our_secret_is_a_signature_error(change):
    headers, body = change(*_signed({"action": "created"}))

    with pytest.raises(SignatureError):
        Event.from_http(headers, body, SECRET)


@pytest.mark.parametrize("missing", ["X-GitHub-Event", "X-GitHub-Delivery"])
def test_a_signed_delivery_without_its_event_or_delivery_header_is_a_missing_header_error(missing):
    headers, body = _signed({"action": "created"})

    with pytest.raises(MissingHeaderError):
        Event.from_http({k: v for k, v in headers.items() if k != missing}, body, SECRET)


@pytest.mark.parametrize("body", [
    b"this is not json",
    b"[1, 2, 3]",
    b'"a string"',
    b'{"action": "opened", "issue": {"title": "cut off',
    b'{"action": "opened"} and then some',
    # JSON is UTF-8: a byte that is not, in a string the envelope does not read
    b'{"action": "opened", "issue": {"title": "caf\xe9"}}',
], ids=repr)
def test_a_signed_body_that_is_not_a_json_object_is_a_payload_error(body):
    headers, body = _signed(body)

    with pytest.raises(PayloadError) as raised:
        Event.from_http(headers, body, SECRET)
    assert not isinstance(raised.value, MissingHeaderError)


@pytest.mark.parametrize(("payload", "action", "installation_id"), [
    ({"action": "opened", "installation": {"id": 7}}, "opened", 7),
    ({}, None, None),
    ({"action": 3, "installation": {"id": "7"}}, None, None),
    ({"action": None, "installation": [7]}, None, None),
])
def test_action_and_installation_are_read_only_when_github_s_types_are_there(payload, action, installation_id):
    headers, body = _signed(payload)

    event = Event.from_http(headers, body, SECRET)

    assert (event.action, event.installation_id) == (action, installation_id)
    assert (Event("issues", "d-1", payload).action, Event("issues", "d-1", payload).installation_id) == (
        action, installation_id)


def test_the_events_module_needs_no_web_framework():
    code = ("import sys, app.events.event, app.events.signature; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'starlette', 'uvicorn', 'httpx', 'sqlalchemy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
