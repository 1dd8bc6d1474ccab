"""`serve` with DRAFTSMITH_WEBHOOK_RELAY_URL runs one relay subscriber, restarts it, and it resumes where it was."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx

from app.relay.subscriber import create_channel
from tests.support.webhooks import signed_headers

SECRET = "cli-relay-webhook-secret"


def post_to_channel(channel: str, delivery_id: str) -> None:
    """What GitHub does when the App's webhook URL is the channel."""
    body = json.dumps({"action": "created", "starred_at": "Keep it logically awesome."}).encode()
    response = httpx.post(channel, content=body, headers=signed_headers(body, "star", SECRET, delivery_id))
    assert response.status_code == 200


def test_serve_relays_a_channel_and_a_restarted_relay_resumes_after_the_last_event(start_serve, fakehub):
    channel = asyncio.run(create_channel(f"{fakehub.api_url}/relay"))
    name = channel.rsplit("/", 1)[1]

    def state() -> dict:
        return httpx.get(f"{fakehub.api_url}/_fakehub/relay/{name}").json()

    serve = start_serve(f"GITHUB_WEBHOOK_SECRET={SECRET}\nDRAFTSMITH_WEBHOOK_RELAY_URL={channel}\n", wait=False)
    serve.wait_healthy(timeout=90)  # a shared, busy machine can take over 30 s to start five processes
    serve.wait_for_output(f"(and relayed from {fakehub.api_url}/relay/{name[:4]}…)")
    # One subscriber for the deployment
    [relay] = serve.children_named("app.relay")
    wait(lambda: state()["open_streams"] == 1, "the relay to subscribe", timeout=45)

    first = str(uuid.uuid4())
    post_to_channel(channel, first)
    assert serve.wait_for_delivery_status(first, timeout=30) in ("processed", "ignored")

    # When the relay process dies, a delivery made meanwhile is kept by the channel
    relay.kill()
    wait(lambda: state()["open_streams"] == 0, "the stream to close")
    second = str(uuid.uuid4())
    post_to_channel(channel, second)

    # Then serve restarts it, it asks for what came after the last event it delivered, and relays it
    assert serve.wait_for_delivery_status(second, timeout=45) in ("processed", "ignored")
    assert state()["last_event_ids"] == [None, "1"]
    assert len(serve.children_named("app.relay")) == 1
    log = serve.output
    # And the console never shows a body, a signature, or the whole channel URL (it gives read access)
    assert SECRET not in log and "sha256=" not in log and "Keep it logically" not in log and channel not in log


def wait(condition, what: str, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
