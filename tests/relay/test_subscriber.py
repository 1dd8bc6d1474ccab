"""The subscriber against relays shaped like gosmee and smee.io (their HTTP answers, as their sources give
them), without a network: it finds the stream, skips the relay's own events, resumes, and makes channels."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx

from app.relay.subscriber import Relay, create_channel

BODY = b'{"zen":"Design for failure.","hook_id":1}'


def gosmee_frame(event_id: str, delivery_id: str) -> str:
    data = {"x-github-event": "ping", "x-github-delivery": delivery_id, "x-hub-signature-256": "sha256=" + "a" * 64,
            "content-type": "application/json", "timestamp": "1733000000000",
            "bodyB": base64.b64encode(BODY).decode()}
    return f"id: {event_id}\ndata: {json.dumps(data)}\n\n"


async def test_a_gosmee_channel_is_followed_to_its_events_path_and_resumed_after_the_stream_ends():
    posted: list[tuple[str, bytes]] = []
    connects: list[str | None] = []

    def gosmee_and_app(request: httpx.Request) -> httpx.Response:
        if request.url.host == "app.test":
            posted.append((request.headers["x-github-delivery"], request.content))
            return httpx.Response(202, json={"delivery": request.headers["x-github-delivery"], "duplicate": False})
        if request.url.path == "/ch":  # gosmee serves the channel's web page here
            return httpx.Response(200, text="<html>channel</html>", headers={"content-type": "text/html"})
        assert request.url.path == "/events/ch"
        connects.append(request.headers.get("last-event-id"))
        if len(connects) == 1:
            text = 'data: {"message":"connected"}\n\ndata: {"message":"ready"}\n\n'
            text += gosmee_frame("1-0", "a") + gosmee_frame("2-0", "b")
        elif len(connects) == 2:
            text = gosmee_frame("3-0", "c")
        else:
            text = ": keepalive\n\n"
        return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})

    relay = Relay("http://gosmee.test/ch", "http://app.test/api/github/webhooks",
                  transport=httpx.MockTransport(gosmee_and_app), initial_backoff=0.01, max_backoff=0.02)
    task = asyncio.create_task(relay.run())
    try:
        for _ in range(500):
            if len(posted) == 3 and len(connects) >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert posted == [("a", BODY), ("b", BODY), ("c", BODY)]
    assert connects[:3] == [None, "2-0", "3-0"]
    assert (relay.stats.relayed, relay.stats.unreadable) == (3, 0)


async def test_a_channel_comes_from_smee_ios_redirect_or_gosmees_plain_answer():
    def smee(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/new"
        return httpx.Response(307, headers={"location": "https://smee.io/fReSh1234"})

    def gosmee(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="https://hook.example/Zz9\n", headers={"content-type": "text/plain"})

    assert await create_channel("https://smee.io", transport=httpx.MockTransport(smee)) == "https://smee.io/fReSh1234"
    assert await create_channel("https://hook.example/", transport=httpx.MockTransport(gosmee)) == \
        "https://hook.example/Zz9"
