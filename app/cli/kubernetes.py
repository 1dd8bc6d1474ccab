"""CLI command `draftsmith kubernetes-run`: what a Kubernetes run's pod runs."""

from __future__ import annotations

import asyncio
import os

import typer


def register(cli: typer.Typer) -> None:
    cli.command("kubernetes-run")(kubernetes_run)


def kubernetes_run() -> None:
    """Run the agent of one Kubernetes run in this pod (the run's Job starts it) and report to Draftsmith."""
    from app.engines.actions.runner import ActionsRunError
    from app.engines.kubernetes.pod import PodRunError, execute

    try:
        code = asyncio.run(execute(dict(os.environ)))
    except (PodRunError, ActionsRunError) as exc:
        typer.echo(f"draftsmith kubernetes-run: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)
