"""Subscribe to a relay channel's event stream and POST each delivery to our own webhook URL; create channels.

Deliveries go to ingress over HTTP (loopback, under `serve`), not into its function: ingress belongs to
the web processes, which hold the recorder, its enqueuer and the webhook metrics, so a relayed delivery
takes exactly the path GitHub's own do (size cap, signature check, dedupe on X-GitHub-Delivery, durable
record), and this process needs nothing but httpx. It also lets `draftsmith relay` feed any Draftsmith.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx
from httpx_sse import SSEError, aconnect_sse

from app.logs import get_logger
from app.relay.events import (RelayedDelivery, RelayFormatError, backoff, delivery_from_event, shown_channel,
                              stream_urls)
from app.relay.state import TOTALS, read_state, write_state

log = get_logger(component="relay")

# smee.io pings every 30 s and gosmee writes a keep-alive comment as often: silence for longer is a dead
# connection that TCP has not noticed yet.
IDLE_TIMEOUT = 90.0
INGRESS_MAX_BACKOFF = 5.0


class RelayError(Exception):
    """The relay answered something we cannot use (no channel URL from /new, a stream that is not SSE)."""


@dataclass
class RelayStats:
    """What this subscriber did since it started (each delivery counted once, by its last outcome)."""

    relayed: int = 0  # accepted by ingress as new
    duplicates: int = 0  # accepted by ingress as already recorded
    refused: int = 0  # refused by ingress for good (bad signature, not JSON, too large)
    unreadable: int = 0  # events that were not a delivery we could rebuild
    connects: int = 0
    reconnects: int = 0


class Relay:
    """Keeps one subscription to `channel_url` open and replays each delivery to `target_url`, in order.

    An event's id becomes our Last-Event-ID only once ingress has answered for it, so a relay that
    keeps history (gosmee with Redis, our fake) resends, after a drop, everything not yet answered;
    ingress drops what it already holds. `state_file` keeps that id across restarts of this process.
    """

    def __init__(
        self,
        channel_url: str,
        target_url: str,
        *,
        state_file: Path | None = None,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        idle_timeout: float = IDLE_TIMEOUT,
        jitter: Callable[[], float] = random.random,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.channel_url = channel_url.rstrip("/")
        self.shown = shown_channel(self.channel_url)
        self.target_url = target_url
        self.state_file = state_file
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.idle_timeout = idle_timeout
        self.jitter = jitter
        self.transport = transport
        self.stats = RelayStats()
        self.last_event_id: str | None = self._load_last_event_id()
        self.connected = asyncio.Event()
        self._stream_url: str | None = None
        self._was_connected = False

    # -- the subscription ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Relay until cancelled, reconnecting with back-off whenever the stream ends or fails."""
        timeout = httpx.Timeout(10.0, read=self.idle_timeout)
        # trust_env=False for the loopback posts; the stream honours proxies as any client would.
        # Redirects followed: smee.io sends http:// to https:// when FORCE_HTTPS is on.
        stream = httpx.AsyncClient(timeout=timeout, transport=self.transport, follow_redirects=True)
        ingress = httpx.AsyncClient(timeout=30.0, trust_env=False, transport=self.transport)
        async with stream as stream_client, ingress:
            failures = 0
            while True:
                try:
                    await self._consume(stream_client, ingress)
                    reason = "stream closed"
                except (httpx.HTTPError, SSEError, RelayError) as exc:
                    reason = f"{type(exc).__name__}: {str(exc).replace(self.channel_url, self.shown)}"
                self.connected.clear()
                failures = 1 if self._was_connected else failures + 1
                delay = backoff(failures, self.jitter(), initial=self.initial_backoff, cap=self.max_backoff)
                self.stats.reconnects += 1
                self._save()
                log.warning("relay_disconnected", channel=self.shown, reason=reason,
                            reconnect_in_seconds=round(delay, 2), last_event_id=self.last_event_id)
                await asyncio.sleep(delay)

    async def _consume(self, stream_client: httpx.AsyncClient, ingress: httpx.AsyncClient) -> None:
        self._was_connected = False
        candidates = [self._stream_url] if self._stream_url else stream_urls(self.channel_url)
        for number, url in enumerate(candidates):
            headers = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
            async with aconnect_sse(stream_client, "GET", url, headers=headers) as source:
                response = source.response
                is_stream = "text/event-stream" in response.headers.get("content-type", "")
                if (not is_stream or response.status_code == 404) and number + 1 < len(candidates):
                    continue  # gosmee: the channel URL is a web page; its stream is at /events/<channel>
                if response.status_code != 200:
                    raise RelayError(f"the channel's stream answered {response.status_code}")
                self._stream_url = url
                self._was_connected = True
                self.stats.connects += 1
                self.connected.set()
                self._save()
                log.info("relay_connected", channel=self.shown, last_event_id=self.last_event_id)
                async for sse in source.aiter_sse():
                    await self._handle(ingress, sse.event, sse.data)
                    if sse.id:
                        self._advance(sse.id)
                    elif self.state_file is not None and sse.event not in ("ping", "ready"):
                        self._save()  # an event without an id: the totals alone
                return
        raise RelayError("no event stream at the channel URL")

    async def _handle(self, ingress: httpx.AsyncClient, event: str, data: str) -> None:
        try:
            delivery = delivery_from_event(event, data)
        except RelayFormatError as exc:
            self.stats.unreadable += 1
            log.warning("relay_event_unreadable", channel=self.shown, sse_event=event, error=str(exc))
            return
        if delivery is None:
            if event == "gosmee-gap":  # the relay no longer has everything since our Last-Event-ID
                log.warning("relay_history_gap", channel=self.shown, last_event_id=self.last_event_id)
            return
        await self._replay(ingress, delivery)

    async def _replay(self, ingress: httpx.AsyncClient, delivery: RelayedDelivery) -> None:
        """POST one delivery until ingress answers for it; retry while it cannot (restarting, 5xx)."""
        failures = 0
        while True:
            try:
                response = await ingress.post(self.target_url, content=delivery.body, headers=delivery.headers)
                status = response.status_code
            except httpx.HTTPError as exc:
                status, response = 0, None
                error = type(exc).__name__
            if 200 <= status < 300:
                duplicate = _duplicate(response)
                if duplicate:
                    self.stats.duplicates += 1
                else:
                    self.stats.relayed += 1
                log.info("relay_delivered", delivery_id=delivery.delivery_id, gh_event=delivery.event,
                         status=status, duplicate=duplicate)
                return
            if 400 <= status < 500:
                # Ingress will refuse it every time; the body and signature are never logged.
                self.stats.refused += 1
                log.warning("relay_delivery_refused", delivery_id=delivery.delivery_id, gh_event=delivery.event,
                            status=status, raw_body=delivery.raw_body)
                return
            failures += 1
            # Ingress is on this machine: it is back within seconds (a web process restarting), so the
            # wait stays short however often it failed.
            delay = backoff(failures, self.jitter(), initial=self.initial_backoff,
                            cap=min(self.max_backoff, INGRESS_MAX_BACKOFF))
            log.warning("relay_ingress_unavailable", delivery_id=delivery.delivery_id, status=status or None,
                        error=None if status else error, retry_in_seconds=round(delay, 2))
            await asyncio.sleep(delay)

    # -- Last-Event-ID and totals, kept across restarts ---------------------------------------------------
    def _advance(self, event_id: str) -> None:
        self.last_event_id = event_id
        self._save()

    def _save(self) -> None:
        if self.state_file is not None:
            write_state(self.state_file, {"channel": self.channel_url, "last_event_id": self.last_event_id,
                                          "connected": self.connected.is_set(), "totals": asdict(self.stats)})

    def _load_last_event_id(self) -> str | None:
        saved = read_state(self.state_file) if self.state_file is not None else None
        if not saved or saved.get("channel") != self.channel_url:
            return None  # an id means nothing on another channel
        totals = saved.get("totals") or {}
        # Counters go on from where the last process left them, as /metrics counters must.
        self.stats = RelayStats(**{name: int(totals.get(name, 0)) for name in TOTALS})
        return saved.get("last_event_id")


def _duplicate(response: httpx.Response | None) -> bool:
    try:
        return bool(response is not None and response.json().get("duplicate"))
    except (ValueError, AttributeError):
        return False


async def create_channel(relay_base_url: str, *, transport: httpx.AsyncBaseTransport | None = None) -> str:
    """A new channel on the relay at `relay_base_url` (e.g. https://smee.io): its URL, to use as the App's
    webhook URL and as DRAFTSMITH_WEBHOOK_RELAY_URL.

    smee.io answers `GET /new` with a redirect to the channel; gosmee with the channel's URL as plain text.
    """
    new = relay_base_url.rstrip("/") + "/new"
    async with httpx.AsyncClient(timeout=15.0, transport=transport) as client:
        response = await client.get(new, follow_redirects=False)
    if response.is_redirect and response.headers.get("location"):
        return urljoin(new, response.headers["location"])
    text = response.text.strip()
    if response.status_code == 200 and text.startswith(("http://", "https://")) and "\n" not in text:
        return text
    raise RelayError(f"{new} answered {response.status_code} without a channel URL")
