"""The `draftsmith` command line (typer). Each command lives in its own module and registers itself here."""

from __future__ import annotations

import typer

from app.cli import _serve, actions_run, agents, audit, credentials, demo, fakehub, installations, kubernetes, relay

cli = typer.Typer(
    name="draftsmith",
    help="Turn GitHub issues into draft pull requests written by coding agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@cli.callback()
def _group() -> None:
    """Keeps typer treating this as a group of commands even while it has one."""


for module in (_serve, fakehub, demo, agents, credentials, installations, audit, actions_run, relay, kubernetes):
    module.register(cli)


def main() -> None:
    cli()
