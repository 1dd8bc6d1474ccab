"""Apply the alembic migrations in migrations/ to the configured database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

import app


def migrations_dir() -> Path:
    # A source checkout keeps migrations/ beside app/; the wheel carries a copy inside the package.
    for candidate in (Path(app.__file__).parent.parent / "migrations", Path(app.__file__).parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise RuntimeError("migrations/ not found next to the app package")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
