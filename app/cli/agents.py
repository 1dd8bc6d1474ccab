"""CLI command `draftsmith agents`: which agent CLIs this worker can run, and how to install the others."""

from __future__ import annotations

import typer


def register(cli: typer.Typer) -> None:
    cli.command("agents")(list_agents)


def list_agents() -> None:
    """List every agent adapter, whether it is available on this worker and why, with its install hint."""
    from app.agents.base import AGENT_PATH_ENV
    from app.agents.registry import all_agents

    for agent in all_agents():
        availability = agent.availability()
        mark = "available" if availability.available else "missing"
        typer.echo(f"{agent.name:<16}{mark:<11}{availability.reason}")
        if not availability.available:
            typer.echo(f"{'':<27}install: {availability.install_hint}")
    typer.echo(f"\nCLIs are looked up on {AGENT_PATH_ENV} (directories, ':'-separated), then PATH.")
