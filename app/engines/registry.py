"""The one place a `runner:` name becomes code. Adding an engine is a package and a line here."""

from __future__ import annotations

import importlib

from app.engines.base import Engine

# Imported on first use: a web process never loads the sandbox, and a worker only the engines it runs.
ENGINES: dict[str, str] = {
    "sandbox": "app.engines.sandbox.engine:SandboxEngine",
    "actions": "app.engines.actions.engine:ActionsEngine",
    "kubernetes": "app.engines.kubernetes.engine:KubernetesEngine",
}
DEFAULT = "sandbox"
_loaded: dict[str, Engine] = {}


class UnknownEngine(LookupError):
    pass


def engine_for(runner: str | None) -> Engine:
    name = runner or DEFAULT
    if name not in _loaded:
        if name not in ENGINES:
            raise UnknownEngine(f"no engine named {name!r}; known: {', '.join(ENGINES)}")
        module, _, attribute = ENGINES[name].partition(":")
        _loaded[name] = getattr(importlib.import_module(module), attribute)()
    return _loaded[name]
