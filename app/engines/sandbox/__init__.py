"""Sandboxes that run an agent's command in its workspace, isolated from the app (see base.py)."""

from app.engines.sandbox.base import (
    Egress,
    Forward,
    OutputCallback,
    Sandbox,
    SandboxResult,
    SandboxSpec,
    SandboxUnavailable,
)
from app.engines.sandbox.backends import select_sandbox

__all__ = [
    "Egress",
    "Forward",
    "OutputCallback",
    "Sandbox",
    "SandboxResult",
    "SandboxSpec",
    "SandboxUnavailable",
    "select_sandbox",
]
