"""A webhook relay channel service for tests, shaped like smee.io's and gosmee's (app.relay reads both).

- `GET /relay/new`: a 307 redirect to a fresh channel `/relay/<id>`, as smee.io's `GET /new`;
- `POST /relay/<id>`: what GitHub posts deliveries to; each is kept with the next id of its channel;
- `GET /relay/<id>` with `Accept: text/event-stream`: the stream. Each delivery is one event, `id:` its
  number and `data:` the lower-cased headers plus `bodyB`, the raw body in base64 (gosmee's framing;
  smee.io re-serialises the body instead). `Last-Event-ID` resumes after that id, as gosmee does with
  its Redis streams; without it a stream starts with what arrives next, as on smee.io.

Admin (app.fakehub.admin): `GET /_fakehub/relay/<id>` (events kept, streams open) and
`POST /_fakehub/relay/<id>/drop` (close the open streams now, or after `after` more events; `partial`
sends half of the next event first, as a connection cut mid-write would).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from app.fakehub import admin
from app.fakehub.hub import FakeHub

PREFIX = "/relay/"
KEEPALIVE_SECONDS = 15.0
_POLL = 0.02


@dataclass
class _Drop:
    after: int  # events still to send before closing
    partial: bool


@dataclass
class Channel:
    events: list[tuple[int, str]] = field(default_factory=list)  # (id, data), oldest first
    streams: dict[int, _Drop | None] = field(default_factory=dict)  # open streams, and a drop asked of each
    connects: int = 0
    last_event_ids: list[str | None] = field(default_factory=list)  # Last-Event-ID of each connection


class Channels:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_id: dict[str, Channel] = {}
        self._streams = 0

    def get(self, channel: str) -> Channel:
        with self.lock:
            return self.by_id.setdefault(channel, Channel())


def channels(hub: FakeHub) -> Channels:
    """The hub's channels, made on first use (the relay is an add-on to the fake GitHub)."""
    found = hub.__dict__.get("_relay_channels")
    if found is None:
        found = hub.__dict__.setdefault("_relay_channels", Channels())
    return found


async def dispatch(hub: FakeHub, request: Request) -> Response:
    name = request.url.path[len(PREFIX):].strip("/")
    if not name or "/" in name:
        return JSONResponse({"message": "Not Found"}, 404)
    if name == "new" and request.method in ("GET", "HEAD"):
        return RedirectResponse(f"{str(request.base_url).rstrip('/')}{PREFIX}{secrets.token_urlsafe(12)}", 307)
    if request.method == "POST":
        return await _publish(hub, name, request)
    if request.method == "GET":
        if request.headers.get("accept") == "text/event-stream":  # smee.io's test, exactly
            return _stream(hub, name, request.headers.get("last-event-id"))
        return HTMLResponse(f"<h1>Relay channel {name}</h1><p>Webhooks posted here are streamed to subscribers.</p>")
    return JSONResponse({"message": "Method Not Allowed"}, 405)


async def _publish(hub: FakeHub, name: str, request: Request) -> Response:
    if "application/json" not in request.headers.get("content-type", ""):
        return JSONResponse({"message": "content-type must be application/json"}, 400)
    body = await request.body()
    try:
        json.loads(body)
    except ValueError:
        return JSONResponse({"message": "body is not JSON"}, 400)
    message: dict[str, Any] = {key.lower(): value for key, value in request.headers.items()}
    message["timestamp"] = str(int(time.time() * 1000))
    message["bodyB"] = base64.b64encode(body).decode()
    group = channels(hub)
    channel = group.get(name)
    with group.lock:
        event_id = (channel.events[-1][0] if channel.events else 0) + 1
        channel.events.append((event_id, json.dumps(message, separators=(",", ":"))))
    return JSONResponse({"status": 200, "channel": name, "id": str(event_id)}, 200)


def _stream(hub: FakeHub, name: str, last_event_id: str | None) -> StreamingResponse:
    group = channels(hub)
    channel = group.get(name)
    with group.lock:
        group._streams += 1
        stream = group._streams
        channel.streams[stream] = None
        channel.connects += 1
        channel.last_event_ids.append(last_event_id)
        if last_event_id and last_event_id.isdigit():
            after = int(last_event_id)
        else:
            after = channel.events[-1][0] if channel.events else 0

    async def events():
        sent = after
        quiet_since = time.monotonic()
        try:
            yield b"event: ready\ndata: {}\n\n"
            while True:
                with group.lock:
                    drop = channel.streams.get(stream)
                    pending = [e for e in channel.events if e[0] > sent]
                if drop is not None and drop.after <= 0:
                    return
                for event_id, data in pending:
                    frame = f"id: {event_id}\ndata: {data}\n\n".encode()
                    with group.lock:
                        drop = channel.streams.get(stream)
                        if drop is not None and drop.after <= 0:
                            if drop.partial:
                                yield frame[: len(frame) // 2]
                            return
                        if drop is not None:
                            drop.after -= 1
                    yield frame
                    sent = event_id
                    quiet_since = time.monotonic()
                if time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
                    yield b": keepalive\n\n"
                    quiet_since = time.monotonic()
                await asyncio.sleep(_POLL)
        finally:
            with group.lock:
                channel.streams.pop(stream, None)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@admin.route("GET", r"/relay/(?P<name>[A-Za-z0-9_-]+)")
def relay_channel(hub: FakeHub, request: Request, body: dict, name: str) -> tuple[int, Any]:
    group = channels(hub)
    channel = group.get(name)
    with group.lock:
        return 200, {"events": len(channel.events), "last_id": channel.events[-1][0] if channel.events else 0,
                     "open_streams": len(channel.streams), "connects": channel.connects,
                     "last_event_ids": list(channel.last_event_ids)}


@admin.route("POST", r"/relay/(?P<name>[A-Za-z0-9_-]+)/drop")
def drop_streams(hub: FakeHub, request: Request, body: dict, name: str) -> tuple[int, Any]:
    """Close the channel's open streams: now, or once each has sent `after` more events."""
    group = channels(hub)
    channel = group.get(name)
    with group.lock:
        for stream in channel.streams:
            channel.streams[stream] = _Drop(after=int(body.get("after", 0)), partial=bool(body.get("partial")))
        return 200, {"dropping": len(channel.streams)}
