"""`python -m app.relay --target URL`: the relay subscriber as `serve` runs it, one per deployment."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from app.logs import configure_logging, get_logger
from app.settings import Settings, settings_from_environment


def run(settings: Settings, target_url: str, channel_url: str | None = None) -> int:
    """Relay `channel_url` (default DRAFTSMITH_WEBHOOK_RELAY_URL) to `target_url` until SIGINT/SIGTERM."""
    from app.relay.state import state_path
    from app.relay.subscriber import Relay

    channel = channel_url or settings.webhook_relay_url
    if not channel:
        print("draftsmith relay: DRAFTSMITH_WEBHOOK_RELAY_URL is not set (or pass --channel)", file=sys.stderr)
        return 2
    relay = Relay(channel, target_url, state_file=state_path(settings.data_dir))
    from app.relay.events import shown_channel

    get_logger(component="relay").info("relay_starting", channel=shown_channel(channel), target=target_url)

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await relay.run()
        except asyncio.CancelledError:
            pass

    asyncio.run(main())
    stats = relay.stats
    get_logger(component="relay").info("relay_stopped", relayed=stats.relayed, duplicates=stats.duplicates,
                                       refused=stats.refused, reconnects=stats.reconnects)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.relay")
    parser.add_argument("--target", required=True, help="this app's webhook URL (loopback under serve)")
    args = parser.parse_args(argv)
    settings = settings_from_environment()
    configure_logging(settings.log_format, settings.log_level, settings.secret_values())
    return run(settings, args.target)


if __name__ == "__main__":
    sys.exit(main())
