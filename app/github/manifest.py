"""The App manifest, app.yml: the events and permissions Draftsmith asks GitHub for (shipped in the wheel)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

import app

_PACKAGED = Path(app.__file__).parent / "app.yml"  # force-included by pyproject.toml
_SOURCE_TREE = Path(app.__file__).parents[1] / "app.yml"


@cache
def load_manifest() -> dict[str, Any]:
    path = _PACKAGED if _PACKAGED.is_file() else _SOURCE_TREE
    return yaml.safe_load(path.read_text())


def default_permissions() -> dict[str, str]:
    return dict(load_manifest()["default_permissions"])
