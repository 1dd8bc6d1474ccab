"""CLI command: `audit [--repo R] [--since D]` prints who changed what, newest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from app.cli._options import EnvFile, settings_from


def register(cli: typer.Typer) -> None:
    cli.command("audit")(show_audit)


def _since(value: str | None) -> datetime | None:
    """An ISO date or time (UTC), or a duration back from now: 90m, 24h, 7d."""
    if not value:
        return None
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if value[-1:] in units and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither a date (2026-12-01) nor a duration (24h, 7d)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def show_audit(
    repo: Annotated[str | None, typer.Option("--repo", help="owner/name: only this repository.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="A date (2026-12-01) or a duration back (24h, 7d).")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many entries.")] = 1000,
    env_file: EnvFile = None,
) -> None:
    """Who triggered, cancelled or retried tasks, set or deleted keys, and what configs were refused."""
    from app import audit
    from app.db import make_engine
    from app.migrate import upgrade

    moment = _since(since)
    engine = make_engine(settings_from(env_file).effective_database_url)
    upgrade(engine)
    rows = audit.entries(engine, repo=repo, since=moment, limit=limit)
    if not rows:
        typer.echo("Nothing in the audit log" + (" for that filter." if repo or since else " yet."))
        return
    for entry in rows:
        typer.echo(audit.line(entry))
