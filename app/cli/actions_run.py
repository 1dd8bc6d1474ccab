"""CLI command `draftsmith actions-run`: the step workflows/draftsmith.yml runs on a GitHub Actions runner."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import typer


def register(cli: typer.Typer) -> None:
    cli.command("actions-run")(actions_run)


def actions_run(
    event_path: Path = typer.Option(None, help="Event file (default: $GITHUB_EVENT_PATH)."),
    workspace: Path = typer.Option(None, help="Checked-out repository (default: $GITHUB_WORKSPACE)."),
) -> None:
    """Run the agent for a `draftsmith-run` dispatch in this checkout and report to Draftsmith.

    Exits 0 once Draftsmith accepted the result (whether or not the agent succeeded: Draftsmith reports
    that on the issue and check run); non-zero when the result could not be delivered, so the failed job
    tells Draftsmith the run ended without calling back. A manual try (workflow_dispatch) prints the
    patch to the job summary and exits with the agent's success.
    """
    from app.engines.actions.runner import ActionsRunError, execute

    try:
        code = asyncio.run(execute(dict(os.environ), event_path=event_path, workspace=workspace))
    except ActionsRunError as exc:
        typer.echo(f"draftsmith actions-run: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)
