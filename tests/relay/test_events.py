"""A relay event becomes the request GitHub made, whichever relay framed it; reconnects back off with jitter."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from app.relay.events import (RelayFormatError, backoff, delivery_from_event, github_json, shown_channel,
                              stream_urls)

SECRET = "hush"
# GitHub writes compact JSON with upper-case \u escapes and raw UTF-8 (what @octokit/webhooks expects).
GITHUB_BODY = '{"action":"opened","issue":{"title":"Ünïcode ✓ \\u001F","number":7},"ratio":0.5}'.encode()
HEADERS = {
    "host": "smee.io", "accept": "*/*", "user-agent": "GitHub-Hookshot/abc", "x-github-event": "issues",
    "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958", "x-github-hook-id": "1",
    "x-hub-signature-256": "sha256=" + hmac.new(SECRET.encode(), GITHUB_BODY, hashlib.sha256).hexdigest(),
    "content-type": "application/json", "content-length": str(len(GITHUB_BODY)),
}


def js_stringify(value) -> str:
    """JSON.stringify's output: compact, raw UTF-8, lower-case hex in the escapes it writes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def smee_event() -> str:
    # probot/smee.io lib/server.js: JSON.stringify({...req.headers, body: req.body, query, timestamp})
    return js_stringify({**HEADERS, "body": json.loads(GITHUB_BODY), "query": {}, "timestamp": 1733000000000})


def gosmee_event() -> str:
    # chmouel/gosmee server.go: the headers, a string timestamp, and bodyB (the raw body in base64)
    return json.dumps({**HEADERS, "timestamp": "1733000000000", "bodyB": base64.b64encode(GITHUB_BODY).decode()})


def signature_holds(delivery) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), delivery.body, hashlib.sha256).hexdigest()
    return delivery.headers["x-hub-signature-256"] == expected


@pytest.mark.parametrize("data, raw", [(gosmee_event(), True), (smee_event(), False)], ids=["gosmee", "smee.io"])
def test_a_relayed_delivery_keeps_githubs_headers_and_signed_bytes(data, raw):
    delivery = delivery_from_event("message", data)
    assert delivery.body == GITHUB_BODY
    assert signature_holds(delivery)
    assert delivery.raw_body is raw
    assert delivery.headers == {
        "x-github-event": "issues", "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "x-hub-signature-256": HEADERS["x-hub-signature-256"], "x-github-hook-id": "1",
        "user-agent": "GitHub-Hookshot/abc", "content-type": "application/json",
    }  # not the relay's host, length or accept


def test_a_body_smee_io_respelled_fails_its_signature_rather_than_passing_unsigned():
    # GitHub wrote 1.0; JavaScript parses and writes it back as 1, so the bytes no longer match.
    body = b'{"action":"opened","score":1.0}'
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {**HEADERS, "x-hub-signature-256": signature}
    data = js_stringify({**headers, "body": {"action": "opened", "score": 1}, "query": {}, "timestamp": 1})
    delivery = delivery_from_event("message", data)
    assert delivery.body == b'{"action":"opened","score":1}'
    assert not signature_holds(delivery)


@pytest.mark.parametrize("event, data", [
    ("ready", "{}"),  # smee.io, first
    ("ping", "{}"),  # smee.io, every 30 s
    ("message", '{"message":"connected"}'),  # gosmee, first
    ("message", '{"message":"ready"}'),
    ("gosmee-gap", '{"error":"missed_history","requested_id":"1-0","oldest_id":"5-0"}'),
    ("message", ""),
])
def test_the_relays_own_events_are_not_deliveries(event, data):
    assert delivery_from_event(event, data) is None


@pytest.mark.parametrize("data", [
    "not json", '["a"]', '{"x-github-event":"issues","bodyB":"e30="}',  # no delivery id
    '{"x-github-event":"issues","x-github-delivery":"1"}',  # no body
    '{"x-github-event":"issues","x-github-delivery":"1","bodyB":"%%%"}',
])
def test_an_event_that_is_not_a_delivery_is_refused(data):
    with pytest.raises(RelayFormatError):
        delivery_from_event("message", data)


def test_only_unicode_escapes_change_case_and_escaped_backslashes_stay():
    assert github_json(r'{"a":"\u001f\\u00ab\n"}') == r'{"a":"\u001F\\u00ab\n"}'


def test_logs_show_only_the_start_of_a_channel_url():
    assert shown_channel("https://smee.io/AbC123xyz") == "https://smee.io/AbC1…"


def test_the_stream_is_at_the_channel_url_or_at_gosmees_events_path():
    assert stream_urls("https://smee.io/AbC123/") == ["https://smee.io/AbC123", "https://smee.io/events/AbC123"]
    assert stream_urls("http://relay.lan:3333/ch") == ["http://relay.lan:3333/ch", "http://relay.lan:3333/events/ch"]


def test_reconnects_back_off_exponentially_up_to_a_cap():
    ceilings = [backoff(n, 1.0, initial=0.5, cap=30.0) for n in range(1, 10)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


@pytest.mark.parametrize("failures", [1, 4, 12])
def test_jitter_takes_up_to_half_of_each_delay_off(failures):
    ceiling = backoff(failures, 1.0)
    assert backoff(failures, 0.0) == ceiling / 2
    assert ceiling / 2 <= backoff(failures, 0.37) <= ceiling
