"""What the relay subscriber keeps on disk: its Last-Event-ID and running totals (read by /metrics)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TOTALS = ("relayed", "duplicates", "refused", "unreadable", "connects", "reconnects")


def state_path(data_dir: Path) -> Path:
    """The one file per deployment: serve's relay process writes it, every web process reads it."""
    return data_dir / "relay" / "state.json"


def read_state(path: Path) -> dict[str, Any] | None:
    """{"channel", "last_event_id", "connected", "totals": {...}}, or None before the relay ever ran."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def write_state(path: Path, state: dict[str, Any]) -> None:
    # Replaced, never written in place, so a reader never sees half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)
