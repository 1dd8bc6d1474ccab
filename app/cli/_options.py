"""Options every command shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.settings import Settings, load_settings

EnvFile = Annotated[
    Path | None,
    typer.Option("--env-file", help="Settings file to read (default: .env when present).", dir_okay=False),
]


def settings_from(env_file: Path | None) -> Settings:
    if env_file is not None and not env_file.exists():
        raise typer.BadParameter(f"{env_file} does not exist", param_hint="--env-file")
    return load_settings(env_file)
