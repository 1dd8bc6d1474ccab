"""(pure) One relay event in, the HTTP request GitHub made out; the reconnect back-off schedule.

Two relays are common, and they frame a delivery differently (read from their sources):

- smee.io (probot/smee.io `lib/server.js`) parses the JSON body and sends, as the event's data,
  `JSON.stringify({...headers, body, query, timestamp})`: headers lower-cased, the body as an object.
  The original bytes are gone; `JSON.stringify` of the parsed body gives them back as GitHub sent them
  (compact, no final newline) except that it writes `\\u001f` where GitHub writes `\\u001F`, which is
  the one difference @octokit/webhooks undoes before it checks a signature. We do the same. A body
  that differs in any other way (a float GitHub spelled `1.0`) fails the signature check at ingress.
- gosmee (chmouel/gosmee `gosmee/server.go`) sends the headers and `bodyB`, the raw body in base64:
  the exact bytes GitHub signed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

# What ingress reads (app.web.webhooks, app.events.event) and what GitHub sends that is worth keeping.
FORWARDED_HEADERS = (
    "x-github-event", "x-github-delivery", "x-hub-signature-256", "x-hub-signature", "x-github-hook-id",
    "x-github-hook-installation-target-id", "x-github-hook-installation-target-type", "user-agent",
)
# smee.io's first and keep-alive events; gosmee's are default events whose data is {"message": ...}.
CONTROL_EVENTS = {"ready", "ping"}
_CONTROL_MESSAGES = {"connected", "ready"}
# gosmee, when asked to resume before the oldest event it still keeps.
GAP_EVENT = "gosmee-gap"


class RelayFormatError(ValueError):
    """An event that is neither a control event nor a delivery we can rebuild."""


@dataclass(frozen=True)
class RelayedDelivery:
    """A delivery as GitHub posted it to the channel: headers (lower-case names) and body bytes."""

    headers: dict[str, str]
    body: bytes = field(repr=False)
    raw_body: bool  # the relay kept the original bytes (gosmee), rather than re-serialising them (smee.io)

    @property
    def delivery_id(self) -> str:
        return self.headers.get("x-github-delivery", "")

    @property
    def event(self) -> str:
        return self.headers.get("x-github-event", "")


def delivery_from_event(event: str, data: str) -> RelayedDelivery | None:
    """The delivery an SSE event carries, or None for the relay's own events (ready, ping, a gap notice)."""
    if event in CONTROL_EVENTS or event == GAP_EVENT or not data.strip() or data.strip() in ("{}", "ready"):
        return None
    try:
        spans = _top_level_spans(data)
    except ValueError as exc:
        raise RelayFormatError(f"event data is not a JSON object: {exc}") from None
    values = {key: json.loads(data[start:end]) for key, (start, end) in spans.items() if key != "body"}
    if set(values) == {"message"} and str(values["message"]).lower() in _CONTROL_MESSAGES:
        return None
    headers = {name: str(values[name]) for name in FORWARDED_HEADERS if isinstance(values.get(name), str)}
    if "x-github-event" not in headers or "x-github-delivery" not in headers:
        raise RelayFormatError("event is not a GitHub delivery (no x-github-event or x-github-delivery)")
    headers["content-type"] = "application/json"  # both relays accept JSON bodies only
    if isinstance(values.get("bodyB"), str):
        try:
            body = base64.b64decode(values["bodyB"], validate=True)
        except (binascii.Error, ValueError):
            raise RelayFormatError("bodyB is not base64") from None
        return RelayedDelivery(headers, body, raw_body=True)
    if "body" in spans:
        start, end = spans["body"]
        return RelayedDelivery(headers, github_json(data[start:end]).encode(), raw_body=False)
    raise RelayFormatError("event has neither body nor bodyB")


_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)")


def github_json(text: str) -> str:
    """JSON written by `JSON.stringify`, as GitHub writes it: `\\u` escapes in upper-case hex."""
    return _ESCAPE.sub(lambda m: "\\u" + m.group(1).upper() if m.group(1) else m.group(0), text)


def _top_level_spans(data: str) -> dict[str, tuple[int, int]]:
    """Each top-level key of a JSON object and where its value's text starts and ends in `data`.

    The body's own text is what we want from smee.io, not a re-encoding of it, so the object is walked
    rather than loaded.
    """
    decoder = json.JSONDecoder()
    ws = re.compile(r"\s*")
    index = ws.match(data, 0).end()
    if data[index:index + 1] != "{":
        raise ValueError("no object")
    index = ws.match(data, index + 1).end()
    spans: dict[str, tuple[int, int]] = {}
    if data[index:index + 1] == "}":
        return spans
    while True:
        if data[index:index + 1] != '"':
            raise ValueError(f"expected a key at {index}")
        key, index = json.decoder.scanstring(data, index + 1)
        index = ws.match(data, index).end()
        if data[index:index + 1] != ":":
            raise ValueError(f"expected ':' at {index}")
        start = ws.match(data, index + 1).end()
        _, end = decoder.raw_decode(data, start)
        spans[key] = (start, end)
        index = ws.match(data, end).end()
        if data[index:index + 1] == ",":
            index = ws.match(data, index + 1).end()
        elif data[index:index + 1] == "}":
            if data[index + 1:].strip():
                raise ValueError("text after the object")
            return spans
        else:
            raise ValueError(f"expected ',' or '}}' at {index}")


def shown_channel(channel_url: str) -> str:
    """The channel URL as logs and the console show it: anyone who has the whole URL can read every
    delivery (smee.io and gosmee channels have no other access control), so only its start."""
    parts = urlsplit(channel_url.rstrip("/"))
    head, _, channel = parts.path.rpartition("/")
    return urlunsplit((parts.scheme, parts.netloc, f"{head}/{channel[:4]}…", "", ""))


def stream_urls(channel_url: str) -> list[str]:
    """Where a channel's event stream may be: the channel URL itself (smee.io, our fake), then gosmee's
    `/events/<channel>` beside it (gosmee serves a web page at the channel URL)."""
    parts = urlsplit(channel_url.rstrip("/"))
    head, _, channel = parts.path.rpartition("/")
    gosmee = urlunsplit((parts.scheme, parts.netloc, f"{head}/events/{channel}", parts.query, ""))
    return [urlunsplit(parts), gosmee]


def backoff(failures: int, jitter: float, *, initial: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait before reconnecting after `failures` failed attempts in a row (1 or more).

    Doubles from `initial` up to `cap`; `jitter` (0..1, random in use) takes up to half of it off, so
    many apps dropped by the same relay restart do not reconnect in step ("equal jitter").
    """
    ceiling = min(cap, initial * 2 ** max(0, failures - 1))
    return ceiling / 2 + ceiling / 2 * jitter
