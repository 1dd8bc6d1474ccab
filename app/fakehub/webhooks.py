"""Signs and sends webhook deliveries the way GitHub does, recording each with the receiver's answer."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx

from app.fakehub.state import Delivery, FakeHubState

USER_AGENT = "GitHub-Hookshot/fakehub"
TIMEOUT = 10.0


_client: httpx.Client | None = None


def _http() -> httpx.Client:
    # One pooled client: a fresh httpx.post() per delivery reloads the CA bundle (~90 ms) every time.
    global _client
    if _client is None:
        _client = httpx.Client(timeout=TIMEOUT, trust_env=False)
    return _client


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(state: FakeHubState, event: str, payload: dict[str, Any], *, guid: str | None = None,
            redelivery: bool = False) -> Delivery:
    """Send one delivery synchronously (so tests see its effect when the causing call returns) and record it.

    Each call is one attempt with its own `attempt_id`; a redelivery passes the original's `guid`, which
    GitHub sends again as X-GitHub-Delivery.
    """
    assert state.app is not None
    body = json.dumps(payload).encode()
    delivery = Delivery(
        id=guid or str(uuid.uuid4()), event=event, action=payload.get("action"), payload=payload,
        status_code=None, url=state.webhook_url, attempt_id=state.next_id(), redelivery=redelivery,
    )
    if state.webhook_url:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery.id,
            "X-GitHub-Hook-ID": "1",
            "X-GitHub-Hook-Installation-Target-ID": str(state.app.id),
            "X-GitHub-Hook-Installation-Target-Type": "integration",
            "X-Hub-Signature-256": sign(state.app.webhook_secret, body),
            "X-Hub-Signature": "sha1=" + hmac.new(state.app.webhook_secret.encode(), body, hashlib.sha1).hexdigest(),
        }
        started = time.monotonic()
        try:
            response = _http().post(state.webhook_url, content=body, headers=headers)
            delivery.status_code = response.status_code
        except httpx.HTTPError as error:
            delivery.error = f"{type(error).__name__}: {error}"
        delivery.duration = round(time.monotonic() - started, 3)
    with state.lock:
        state.deliveries.append(delivery)
    return delivery


def redeliver(state: FakeHubState, original: Delivery) -> Delivery:
    """Send `original` again, as `POST /app/hook/deliveries/{id}/attempts` does: same guid, a new attempt."""
    return deliver(state, original.event, original.payload, guid=original.id, redelivery=True)
