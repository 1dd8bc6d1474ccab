"""CLI commands `draftsmith agents [install NAME]`: which agent CLIs this worker can run, and installing them."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli._options import EnvFile, settings_from

agents_cli = typer.Typer(invoke_without_command=True, no_args_is_help=False, add_completion=False,
                         help="List the agent CLIs this worker can run, or install one.")


def register(cli: typer.Typer) -> None:
    cli.add_typer(agents_cli, name="agents")


@agents_cli.callback()
def list_agents(ctx: typer.Context, env_file: EnvFile = None) -> None:
    """List every agent: available or missing, the version installed beside the pinned one, how to install."""
    if ctx.invoked_subcommand is not None:
        return
    from app.agents.base import AGENT_PATH_ENV, find_binary, use_agents_dir
    from app.agents.installer import install_command, installed
    from app.agents.registry import all_agents
    from app.agents.versions import PINS

    root = settings_from(env_file).effective_agents_dir
    use_agents_dir(root)
    typer.echo(f"{'agent':<16}{'status':<11}{'installed':<11}{'pinned':<10}where")
    for agent in all_agents():
        availability = agent.availability()
        mark = "available" if availability.available else "missing"
        pinned = PINS[agent.name][2] if agent.name in PINS else "-"
        version = "-"
        binary = getattr(agent, "binary", None)
        path = find_binary(binary) if binary else None
        ours = installed(root, agent.name)
        if ours is not None and path is not None and path.startswith(str(ours.directory) + "/"):
            version = ours.version
        elif availability.available and binary:
            version = _version_in(availability.reason)
        typer.echo(f"{agent.name:<16}{mark:<11}{version:<11}{pinned:<10}{availability.reason}")
        if not availability.available:
            how = install_command(agent.name) if agent.name in PINS else availability.install_hint
            typer.echo(f"{'':<27}install: {how}   (or by hand: {availability.install_hint})")
    typer.echo(f"\nCLIs are looked up on {AGENT_PATH_ENV} (directories, ':'-separated), then in {root} "
               "(where `draftsmith agents install` puts them), then on PATH.")


def _version_in(reason: str) -> str:
    # binary_availability's reason is "PATH (VERSION)".
    return reason.rsplit("(", 1)[-1].rstrip(")") if reason.endswith(")") else "?"


@agents_cli.command("install")
def install(
    name: Annotated[str, typer.Argument(help="The agent to install, e.g. mini-swe-agent or codex.")],
    version: Annotated[str | None, typer.Option(help="Install this version instead of the pinned one.")] = None,
    env_file: EnvFile = None,
) -> None:
    """Install an agent CLI into the agents dir (a venv or npm prefix of its own), at its pinned version."""
    from app.agents.installer import InstallError, installable
    from app.agents.installer import install as install_cli
    from app.agents.registry import UnknownAgent, get_agent

    root = settings_from(env_file).effective_agents_dir
    try:
        agent = get_agent(name)
    except UnknownAgent as exc:
        typer.echo(f"draftsmith agents install: {exc}", err=True)
        raise typer.Exit(2) from None
    binary = getattr(agent, "binary", None)
    if binary is None or agent.name not in installable():
        typer.echo(f"draftsmith agents install: {agent.name} has nothing to install "
                   f"({agent.availability().install_hint})", err=True)
        raise typer.Exit(2)
    try:
        install_cli(root, agent.name, binary, version, echo=typer.echo)
    except InstallError as exc:
        typer.echo(f"draftsmith agents install: {exc}", err=True)
        raise typer.Exit(1) from None
