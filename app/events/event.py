"""A webhook event as plain values, built from raw HTTP headers and body (no web framework types)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.events import signature


class SignatureError(ValueError):
    """The delivery is not signed with our webhook secret."""


class PayloadError(ValueError):
    """The delivery is signed but its body is not a JSON object."""


@dataclass(frozen=True)
class Event:
    # `name` is the X-GitHub-Event header, a plain string rather than an enum: GitHub adds events
    # without notice and an unknown one must still be recorded, not rejected (as gidgethub does).
    name: str
    delivery_id: str
    payload: dict[str, Any] = field(repr=False)

    @property
    def action(self) -> str | None:
        action = self.payload.get("action")
        return action if isinstance(action, str) else None

    @property
    def installation_id(self) -> int | None:
        installation = self.payload.get("installation")
        if isinstance(installation, dict) and isinstance(installation.get("id"), int):
            return installation["id"]
        return None

    @property
    def repo_full_name(self) -> str | None:
        repo = self.payload.get("repository")
        return repo.get("full_name") if isinstance(repo, dict) else None

    @property
    def sender_login(self) -> str | None:
        sender = self.payload.get("sender")
        return sender.get("login") if isinstance(sender, dict) else None

    @property
    def sender_type(self) -> str | None:
        sender = self.payload.get("sender")
        return sender.get("type") if isinstance(sender, dict) else None

    @classmethod
    def from_http(cls, headers: Mapping[str, str], body: bytes, secret: str) -> Event:
        """Verify and parse a delivery. `headers` must be case-insensitive or lower-cased."""
        if not signature.verify(body, secret, _header(headers, "x-hub-signature-256")):
            raise SignatureError("missing or invalid X-Hub-Signature-256")
        return cls.from_verified(headers, body)

    @classmethod
    def from_verified(cls, headers: Mapping[str, str], body: bytes) -> Event:
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PayloadError(f"body is not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise PayloadError("body is not a JSON object")
        name = _header(headers, "x-github-event") or ""
        delivery_id = _header(headers, "x-github-delivery") or ""
        if not name or not delivery_id:
            raise PayloadError("missing X-GitHub-Event or X-GitHub-Delivery header")
        return cls(name=name, delivery_id=delivery_id, payload=payload)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.title())
    return value
