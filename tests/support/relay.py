"""Run app.relay's subscriber in a background thread (its own event loop), as the relay process would."""

from __future__ import annotations

import asyncio
import threading
import time

from app.relay.subscriber import Relay


class RelayThread:
    """`RelayThread(channel_url, target_url).start()` relays until `stop()`; `.relay` has its stats."""

    def __init__(self, channel_url: str, target_url: str, **options) -> None:
        # Tests reconnect fast; the schedule's shape is tested on its own (tests/relay/test_events.py).
        options.setdefault("initial_backoff", 0.05)
        options.setdefault("max_backoff", 0.5)
        self.relay = Relay(channel_url, target_url, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._ready = threading.Event()

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
            self._ready.set()
            await self.relay.run()

        try:
            asyncio.run(main())
        except asyncio.CancelledError:
            pass

    def start(self) -> RelayThread:
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(5)


def wait_until(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {what}")
