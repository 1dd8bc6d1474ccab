"""CLI commands: serve, worker, migrate, replay."""

from __future__ import annotations

import typer

from app.cli._options import EnvFile, settings_from


def register(cli: typer.Typer) -> None:
    cli.command()(migrate)


def migrate(env_file: EnvFile = None) -> None:
    """Apply the database migrations."""
    from app.db import make_engine
    from app.migrate import upgrade

    settings = settings_from(env_file)
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    typer.echo(f"database at head: {engine.url.render_as_string(hide_password=True)}")
