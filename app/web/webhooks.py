"""POST /api/github/webhooks: verify the signature, record the delivery durably, answer 202 (the enqueue follows)."""

from __future__ import annotations

import json
import time

from app.deliveries.records import NewDelivery
from app.events.event import Event, MissingHeaderError, PayloadError, SignatureError
from app.logs import get_logger

PATH = "/api/github/webhooks"
# GitHub caps payloads at 25 MB and drops bigger ones; anything larger is not from GitHub.
# https://docs.github.com/en/webhooks/webhook-events-and-payloads#payload-cap
MAX_BODY_BYTES = 25 * 1024 * 1024

log = get_logger(component="webhooks")

_JSON_HEADERS = b"application/json"
# The headers Event.from_http reads, as the ASGI scope spells them (lower-case bytes) and as str.
_EVENT_HEADERS = {name.encode(): name for name in ("x-github-event", "x-github-delivery", "x-hub-signature-256")}


def _json(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _accepted_body(delivery_id: str, duplicate: bool) -> bytes:
    # The answer to every accepted delivery, built without a JSON encoder pass (the hot path).
    return b'{"delivery":%s,"duplicate":%s}' % (json.dumps(delivery_id).encode(), b"true" if duplicate else b"false")


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
    """The webhook route as a bare ASGI callable, since Starlette's Request and Response cost more than
    the work (bench/README.md): the app hands POST /api/github/webhooks straight here. Verifying and
    parsing is Event.from_http's. Reads `app.state` (runtime, recorder, webhook_secrets), which the
    app's lifespan sets.
    """

    def __init__(self, state) -> None:
        self.state = state
        self._counters: dict[tuple[str, str, str], object] = {}

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
        headers: dict[str, str] = {}
        length_b = None
        for name, value in scope["headers"]:
            key = _EVENT_HEADERS.get(name)
            if key is not None:
                headers[key] = value.decode("latin-1")
            elif name == b"content-length":
                length_b = value
        event_name = headers.get("x-github-event", "")
        delivery_id = headers.get("x-github-delivery", "")
        secrets: tuple[bytes, ...] | None = state.webhook_secrets
        if secrets is None:
            return await self._answer(send, 503, "not_configured", event_name, "",
                                      _json({"error": "GITHUB_WEBHOOK_SECRET is not configured"}), started)

        body = await _read_capped(receive, length_b)
        if body is None:
            log.warning("webhook_too_large", delivery_id=delivery_id, gh_event=event_name)
            return await self._answer(send, 413, "too_large", event_name, "", _json({"error": "payload over 25 MiB"}),
                                      started)

        try:
            event = Event.from_http(headers, body, secrets)
        except SignatureError:
            # Never log the body: it is unverified input.
            log.warning("webhook_signature_invalid", delivery_id=delivery_id, gh_event=event_name,
                        has_signature="x-hub-signature-256" in headers)
            return await self._answer(send, 401, "bad_signature", event_name, "", _json({"error": "invalid signature"}),
                                      started)
        except MissingHeaderError:
            return await self._answer(send, 400, "bad_request", event_name, "",
                                      _json({"error": "missing X-GitHub-Event or X-GitHub-Delivery"}), started)
        except PayloadError:
            return await self._answer(send, 400, "not_json", event_name, "", _json({"error": "body is not a JSON object"}),
                                      started)

        # Route on the header and the raw action: a strict typed parse rejects many real payloads.
        action = event.action or ""
        if event.name == "ping":
            return await self._answer(send, 200, "ping", event.name, action, _json({"msg": "pong"}), started)

        delivery = NewDelivery(
            id=delivery_id[:64],
            event=event.name[:64],
            action=action[:64] or None,
            installation_id=event.installation_id,
            body=body,
        )
        try:
            recorded = await state.recorder.record(delivery)
        except Exception as exc:
            # Not recorded, so not accepted: a 5xx makes GitHub show the delivery as failed, ready to redeliver.
            log.error("webhook_not_recorded", delivery_id=delivery_id, gh_event=event.name, error_type=type(exc).__name__)
            return await self._answer(send, 503, "not_recorded", event.name, action,
                                      _json({"error": "could not record delivery"}), started)
        outcome = "accepted" if recorded.new else "duplicate"
        await self._answer(send, 202, outcome, event.name, action, _accepted_body(delivery_id, not recorded.new), started)
