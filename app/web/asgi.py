"""ASGI entry point for uvicorn web processes: settings from the environment `serve` set, then create_app."""

from __future__ import annotations

import os
from pathlib import Path

# `serve` (or any launcher) names the settings file here so every process reads the same settings.
ENV_FILE_VARIABLE = "DRAFTSMITH_ENV_FILE"


def app_from_env():
    """uvicorn factory (`app.web.asgi:app_from_env --factory`): build settings once, then the app."""
    from app.logs import configure_logging
    from app.settings import load_settings
    from app.web.app import create_app

    env_file = os.environ.get(ENV_FILE_VARIABLE)
    settings = load_settings(Path(env_file) if env_file else None)
    configure_logging(settings.log_format, settings.log_level, settings.secret_values())
    return create_app(settings)
