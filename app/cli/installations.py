"""CLI command: `installations` lists where the App is installed, with the repositories each reaches."""

from __future__ import annotations

import typer

from app.cli._options import EnvFile, settings_from


def register(cli: typer.Typer) -> None:
    cli.command("installations")(show_installations)


def show_installations(env_file: EnvFile = None) -> None:
    """Where the App is installed (asked from GitHub), with each installation's repositories."""
    from app.github.client import GitHubApp, GitHubNotConfigured
    from app.github.installations import list_installations

    try:
        app = GitHubApp(settings_from(env_file))
    except GitHubNotConfigured as exc:
        typer.echo(f"draftsmith installations: {exc}.", err=True)
        raise typer.Exit(2) from None
    found = list_installations(app)
    if not found:
        typer.echo("The App is not installed anywhere yet: open its page on GitHub and press Install.")
        return
    for installation in found:
        typer.echo(f"{installation.id}  {installation.account} ({installation.account_type})")
        for name in installation.repositories:
            typer.echo(f"    {name}")
