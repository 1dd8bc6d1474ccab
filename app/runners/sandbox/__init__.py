"""Sandboxes that run an agent's command in its workspace, isolated from the app (see base.py)."""

from app.runners.sandbox.base import (
    OutputCallback,
    Sandbox,
    SandboxResult,
    SandboxSpec,
    SandboxUnavailable,
    select_sandbox,
)

__all__ = [
    "OutputCallback",
    "Sandbox",
    "SandboxResult",
    "SandboxSpec",
    "SandboxUnavailable",
    "select_sandbox",
]
