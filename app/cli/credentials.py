"""CLI commands: (to be written)."""

from __future__ import annotations

import typer


def register(cli: typer.Typer) -> None:
    pass
