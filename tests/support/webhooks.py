"""Real webhook payloads from @octokit/webhooks-examples, and signed_headers(): the ONE place tests compute HMAC."""

from __future__ import annotations

import json
import uuid
from functools import cache
from typing import Any

from app.events.signature import sign
from tests.support.npm import webhook_examples_path


@cache
def _examples() -> dict[str, list[dict[str, Any]]]:
    index = json.loads(webhook_examples_path().read_text())
    return {entry["name"]: entry["examples"] for entry in index}


def examples(event: str, action: str | None = None) -> list[dict[str, Any]]:
    """Every example payload for `event` (and `action`, when given); fresh copies, safe to edit."""
    found = [e for e in _examples().get(event, []) if action is None or e.get("action") == action]
    return json.loads(json.dumps(found))


def example(event: str, action: str | None = None, index: int = 0) -> dict[str, Any]:
    """One example payload, e.g. example("issues", "assigned")."""
    found = examples(event, action)
    if not found:
        raise LookupError(f"no @octokit/webhooks-examples payload for {event}.{action}")
    return found[index]


def signed_headers(body: bytes, event: str, secret: str, delivery_id: str | None = None) -> dict[str, str]:
    """The headers GitHub sends with a delivery of `body`, signed with `secret`."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/test",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "1",
        "X-Hub-Signature-256": sign(body, secret),
    }


def encode(payload: dict[str, Any] | bytes | str) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload).encode()
