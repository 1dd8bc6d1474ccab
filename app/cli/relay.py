"""`draftsmith relay`: the webhook relay subscriber on its own, for an app `serve` runs elsewhere."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli._options import EnvFile, settings_from


def register(cli: typer.Typer) -> None:
    cli.command()(relay)


def relay(
    channel: Annotated[str | None, typer.Option(help="Channel URL (default DRAFTSMITH_WEBHOOK_RELAY_URL).")] = None,
    target: Annotated[str | None, typer.Option(help="Webhook URL to replay to (default: this app's).")] = None,
    env_file: EnvFile = None,
) -> None:
    """Subscribe to a smee.io-style channel and replay each delivery to the app's webhook URL."""
    from app.logs import configure_logging
    from app.relay.__main__ import run
    from app.web.webhooks import PATH

    settings = settings_from(env_file)
    configure_logging(settings.log_format, settings.log_level, settings.secret_values())
    if target is None:
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        target = f"http://{host}:{settings.port}{PATH}"
    code = run(settings, target, channel)
    if code:
        raise typer.Exit(code)
