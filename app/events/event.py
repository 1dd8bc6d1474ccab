"""A webhook event as plain values, built from raw HTTP headers and body (no web framework types)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import msgspec

from app.events import signature


class SignatureError(ValueError):
    """The delivery is not signed with our webhook secret."""


class PayloadError(ValueError):
    """The delivery is signed but is not a webhook delivery: its body is not a JSON object."""


class MissingHeaderError(PayloadError):
    """The delivery is signed but has no X-GitHub-Event or X-GitHub-Delivery header."""


class _Envelope(msgspec.Struct):
    # The two fields ingress needs. msgspec still checks that the whole body is well-formed JSON but
    # builds nothing for the rest of it; the payload is parsed in full only when asked for.
    action: object = None
    installation: object = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)


class Event:
    """A webhook delivery: its event name, delivery id and payload.

    `name` is the X-GitHub-Event header, a plain string rather than an enum: GitHub adds events without
    notice and an unknown one must still be recorded, not rejected (as gidgethub does). An event built
    from HTTP keeps its `body` and parses `payload` from it on first use.
    """

    __slots__ = ("name", "delivery_id", "action", "installation_id", "body", "_payload")

    def __init__(self, name: str, delivery_id: str, payload: dict[str, Any]) -> None:
        self.name = name
        self.delivery_id = delivery_id
        self.body: bytes | None = None
        self._payload: dict[str, Any] | None = payload
        self.action = _action(payload.get("action"))
        self.installation_id = _installation_id(payload.get("installation"))

    @classmethod
    def from_http(cls, headers: Mapping[str, str], body: bytes,
                  secret: str | bytes | tuple[str | bytes, ...]) -> Event:
        """Verify and parse a delivery: SignatureError, then MissingHeaderError or PayloadError.

        `headers` is any mapping of header names to values (a plain dict of any case will do). `secret`
        may be several (the new and the old one while rotating): a signature by any of them is good.
        """
        header = _header(headers, "x-hub-signature-256")
        secrets = secret if isinstance(secret, tuple) else (secret,)
        if not any(signature.verify(body, one, header) for one in secrets):
            raise SignatureError("missing or invalid X-Hub-Signature-256")
        return cls.from_verified(headers, body)

    @classmethod
    def from_verified(cls, headers: Mapping[str, str], body: bytes) -> Event:
        """Parse a delivery whose signature was checked elsewhere."""
        name = _header(headers, "x-github-event")
        delivery_id = _header(headers, "x-github-delivery")
        if not name or not delivery_id:
            raise MissingHeaderError("missing X-GitHub-Event or X-GitHub-Delivery header")
        try:
            envelope = _ENVELOPE.decode(body)  # a body that is not a JSON object fails here too
            body.decode("utf-8")  # msgspec does not check the UTF-8 of strings it skips; JSON must be UTF-8
        except msgspec.ValidationError:
            raise PayloadError("body is not a JSON object") from None
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise PayloadError(f"body is not JSON: {exc}") from None
        event = cls.__new__(cls)
        event.name = name
        event.delivery_id = delivery_id
        event.body = body
        event._payload = None
        event.action = _action(envelope.action)
        event.installation_id = _installation_id(envelope.installation)
        return event

    @property
    def payload(self) -> dict[str, Any]:
        if self._payload is None:
            self._payload = json.loads(self.body)
        return self._payload

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

    def __repr__(self) -> str:
        return f"Event(name={self.name!r}, delivery_id={self.delivery_id!r}, action={self.action!r})"


def _action(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _installation_id(installation: object) -> int | None:
    if isinstance(installation, dict) and isinstance(installation.get("id"), int):
        return installation["id"]
    return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """`name` (lower-case) from `headers`: found at once when the mapping is case-insensitive or
    lower-cased, else by comparing each name."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value
