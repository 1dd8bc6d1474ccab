"""POST /api/github/webhooks: verify the signature, record the delivery durably, answer 202 (the enqueue follows)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import msgspec

from app.deliveries.records import NewDelivery
from app.logs import get_logger

PATH = "/api/github/webhooks"
# GitHub caps payloads at 25 MB and drops bigger ones; anything larger is not from GitHub.
# https://docs.github.com/en/webhooks/webhook-events-and-payloads#payload-cap
MAX_BODY_BYTES = 25 * 1024 * 1024

log = get_logger(component="webhooks")

_JSON_HEADERS = b"application/json"


class _Envelope(msgspec.Struct):
    """The two fields ingress routes on. msgspec still checks that the whole body is well-formed JSON,
    but builds nothing for the rest of it: 6 us for a 13 KB payload where orjson.loads, building every
    dict and string, took 18 us (the worker parses the body in full)."""

    action: object = None
    installation: object = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)


def _json(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _accepted_body(delivery_id: str, duplicate: bool) -> bytes:
    # The answer to every accepted delivery, built without a JSON encoder pass (the hot path).
    return b'{"delivery":%s,"duplicate":%s}' % (json.dumps(delivery_id).encode(), b"true" if duplicate else b"false")


def _verify(body: bytes, secret: bytes, header: bytes | None) -> bool:
    # app.events.signature.verify, on the bytes the ASGI scope already holds (no str round trips).
    if not header or not header.startswith(b"sha256="):
        return False
    return hmac.compare_digest(b"sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest().encode(), header)


async def _read_capped(receive, declared: bytes | None) -> bytes | None:
    """The body, or None as soon as it exceeds MAX_BODY_BYTES (the rest is never read)."""
    if declared is not None:
        try:
            if int(declared) > MAX_BODY_BYTES:
                return None
        except ValueError:
            return None
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False):  # the common case: the whole body in one message
        return body if len(body) <= MAX_BODY_BYTES else None
    chunks = [body]
    size = len(body)
    while True:
        if message["type"] == "http.disconnect":
            raise OSError("client disconnected")
        if not message.get("more_body", False):
            break
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class WebhookEndpoint:
    """The webhook route as a bare ASGI callable: Starlette's Request/Response objects and route wrappers
    cost more CPU than verifying, parsing and recording a delivery (py-spy under load), so the app hands
    POST /api/github/webhooks straight here. Reads `app.state` (runtime, recorder, webhook_secret),
    which the app's lifespan sets.
    """

    def __init__(self, state) -> None:
        self.state = state
        self._counters: dict[tuple[str, str, str], object] = {}
        self._secret: tuple[str, bytes] | None = None

    async def _answer(self, send, status: int, outcome: str, event: str, action: str, body: bytes,
                      started: float) -> None:
        metrics = self.state.runtime.metrics
        key = (event, action, outcome)
        counter = self._counters.get(key)
        if counter is None:  # prometheus' labels() costs a lock and a dict build; keep the child
            counter = self._counters[key] = metrics.webhooks.labels(event, action, outcome)
        counter.inc()
        metrics.ingress_latency.observe(time.perf_counter() - started)
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", _JSON_HEADERS), (b"content-length", b"%d" % len(body))],
        })
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send) -> None:
        started = time.perf_counter()
        state = self.state
        event_b = delivery_b = signature_b = length_b = None
        for name, value in scope["headers"]:
            if name == b"x-github-event":
                event_b = value
            elif name == b"x-github-delivery":
                delivery_b = value
            elif name == b"x-hub-signature-256":
                signature_b = value
            elif name == b"content-length":
                length_b = value
        event = event_b.decode("latin-1") if event_b is not None else ""
        delivery_id = delivery_b.decode("latin-1") if delivery_b is not None else ""
        secret: str | None = state.webhook_secret
        if secret is None:
            return await self._answer(send, 503, "not_configured", event, "",
                                      _json({"error": "GITHUB_WEBHOOK_SECRET is not configured"}), started)

        body = await _read_capped(receive, length_b)
        if body is None:
            log.warning("webhook_too_large", delivery_id=delivery_id, gh_event=event)
            return await self._answer(send, 413, "too_large", event, "", _json({"error": "payload over 25 MiB"}), started)

        if self._secret is None or self._secret[0] is not secret:
            self._secret = (secret, secret.encode())
        if not _verify(body, self._secret[1], signature_b):
            # Never log the body: it is unverified input.
            log.warning("webhook_signature_invalid", delivery_id=delivery_id, gh_event=event,
                        has_signature=signature_b is not None)
            return await self._answer(send, 401, "bad_signature", event, "", _json({"error": "invalid signature"}), started)

        if not event or not delivery_id:
            return await self._answer(send, 400, "bad_request", event, "",
                                      _json({"error": "missing X-GitHub-Event or X-GitHub-Delivery"}), started)
        try:
            envelope = _ENVELOPE.decode(body)  # a body that is not a JSON object fails here too
            body.decode("utf-8")  # msgspec does not check the UTF-8 of strings it skips; JSON must be UTF-8
        except (msgspec.DecodeError, UnicodeDecodeError):
            return await self._answer(send, 400, "not_json", event, "", _json({"error": "body is not a JSON object"}), started)

        # Route on the header and the raw action: a strict typed parse rejects many real payloads.
        action = envelope.action if isinstance(envelope.action, str) else ""
        if event == "ping":
            return await self._answer(send, 200, "ping", event, action, _json({"msg": "pong"}), started)

        installation = envelope.installation
        installation_id = installation.get("id") if isinstance(installation, dict) else None
        delivery = NewDelivery(
            id=delivery_id[:64],
            event=event[:64],
            action=action[:64] or None,
            installation_id=installation_id if isinstance(installation_id, int) else None,
            body=body,
        )
        try:
            recorded = await state.recorder.record(delivery)
        except Exception as exc:
            # Not recorded, so not accepted: a 5xx makes GitHub show the delivery as failed, ready to redeliver.
            log.error("webhook_not_recorded", delivery_id=delivery_id, gh_event=event, error_type=type(exc).__name__)
            return await self._answer(send, 503, "not_recorded", event, action,
                                      _json({"error": "could not record delivery"}), started)
        outcome = "accepted" if recorded.new else "duplicate"
        await self._answer(send, 202, outcome, event, action, _accepted_body(delivery_id, not recorded.new), started)
