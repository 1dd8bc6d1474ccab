"""The fake's relay channel: GitHub's deliveries posted to a channel reach a subscriber byte for byte, in
order, and a subscriber that was dropped resumes after the last event it saw."""

from __future__ import annotations

import asyncio

import httpx

from tests.support.relay import RelayThread, wait_until


def new_channel(fakehub) -> str:
    from app.relay.subscriber import create_channel

    return asyncio.run(create_channel(f"{fakehub.api_url}/relay"))


def channel_state(fakehub, url: str) -> dict:
    name = url.rsplit("/", 1)[1]
    return httpx.get(f"{fakehub.api_url}/_fakehub/relay/{name}").json()


def test_a_new_channel_is_a_redirect_to_a_fresh_url(fakehub):
    first, second = new_channel(fakehub), new_channel(fakehub)
    assert first.startswith(f"{fakehub.api_url}/relay/") and second != first
    page = httpx.get(first)  # a browser sees a page, not the stream
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


def test_deliveries_sent_to_a_channel_reach_the_subscriber_with_the_bytes_github_signed(fakehub, webhook_sink):
    # Given the App's webhook URL is a channel, and a relay subscribed to it replays to a receiver
    channel = new_channel(fakehub)
    fakehub.webhook_url = channel
    relay = RelayThread(channel, webhook_sink.url).start()
    try:
        wait_until(lambda: channel_state(fakehub, channel)["open_streams"] == 1, what="the relay to subscribe")
        # When GitHub sends two deliveries (opening an issue; installation.created)
        fakehub.create_repo("octo", "demo")
        fakehub.open_issue("octo/demo", "Ünïcode title ✓")
        fakehub.send_installation_created("octo")
        wait_until(lambda: len(webhook_sink.received) == 2, what="both deliveries")
    finally:
        relay.stop()
    # Then GitHub saw the channel accept both, and the receiver got each as GitHub sent it
    sent = fakehub.deliveries()
    assert [d.status_code for d in sent] == [200, 200]
    for delivery, (headers, body) in zip(sent, webhook_sink.received):
        assert headers["x-github-delivery"] == delivery.id
        assert headers["x-github-event"] == delivery.event
        assert headers["content-type"] == "application/json"
        from app.fakehub.webhooks import sign

        assert headers["x-hub-signature-256"] == sign(fakehub.webhook_secret, body)
    assert relay.relay.stats.relayed == 2


def test_a_dropped_stream_resumes_after_the_last_event_it_delivered(fakehub, webhook_sink):
    channel = new_channel(fakehub)
    name = channel.rsplit("/", 1)[1]
    relay = RelayThread(channel, webhook_sink.url).start()
    try:
        wait_until(lambda: channel_state(fakehub, channel)["open_streams"] == 1, what="the relay to subscribe")
        # The stream is cut half way through the fourth event
        httpx.post(f"{fakehub.api_url}/_fakehub/relay/{name}/drop", json={"after": 3, "partial": True})
        for number in range(1, 7):
            headers = {"Content-Type": "application/json", "X-GitHub-Event": "ping",
                       "X-GitHub-Delivery": f"d-{number}", "X-Hub-Signature-256": "sha256=" + "0" * 64}
            assert httpx.post(channel, content=b'{"n":%d}' % number, headers=headers).status_code == 200
        wait_until(lambda: len(webhook_sink.received) == 6, what="all six deliveries")
    finally:
        relay.stop()
    assert [headers["x-github-delivery"] for headers, _ in webhook_sink.received] == [f"d-{n}" for n in range(1, 7)]
    state = channel_state(fakehub, channel)
    assert state["connects"] == 2 and state["last_event_ids"] == [None, "3"]
    assert relay.relay.stats.reconnects >= 1


def post(channel: str, delivery_id: str) -> None:
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "ping", "X-GitHub-Delivery": delivery_id,
               "X-Hub-Signature-256": "sha256=" + "0" * 64}
    assert httpx.post(channel, content=b'{"zen":"x"}', headers=headers).status_code == 200


def test_a_delivery_ingress_cannot_take_yet_is_retried_and_one_it_refuses_is_skipped(fakehub, webhook_sink):
    channel = new_channel(fakehub)
    relay = RelayThread(channel, webhook_sink.url).start()
    try:
        wait_until(lambda: channel_state(fakehub, channel)["open_streams"] == 1, what="the relay to subscribe")
        # Given ingress answers 503 (it could not record the delivery)
        webhook_sink.status = 503
        post(channel, "d-1")
        wait_until(lambda: len(webhook_sink.received) >= 2, what="a retry")
        # When it recovers, the delivery goes through; then one it refuses (401) is not retried
        webhook_sink.status = 202
        wait_until(lambda: relay.relay.stats.relayed == 1, what="the retried delivery")
        webhook_sink.status = 401
        post(channel, "d-2")
        wait_until(lambda: relay.relay.stats.refused == 1, what="the refusal")
        webhook_sink.status = 202
        post(channel, "d-3")
        wait_until(lambda: relay.relay.stats.relayed == 2, what="the next delivery")
    finally:
        relay.stop()
    ids = [headers["x-github-delivery"] for headers, _ in webhook_sink.received]
    assert set(ids[:-2]) == {"d-1"} and len(ids) >= 3 and ids[-2:] == ["d-2", "d-3"]
