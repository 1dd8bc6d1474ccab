"""How an isolating backend wires a spec's egress in: the relay's command line and the proxy variables."""

from __future__ import annotations

import sys
from pathlib import Path

from app.engines.sandbox import relay
from app.engines.sandbox.base import EGRESS_MOUNT, Egress

RELAY_SCRIPT = Path(relay.__file__).resolve()
# Where the relay script appears inside the sandbox (read-only).
RELAY_MOUNT = "/run/draftsmith-relay.py"
# Loopback model URLs go straight to the forward listeners; nothing else is reachable directly anyway.
NO_PROXY = "localhost,127.0.0.1,::1"


def socket_in_sandbox(egress: Egress) -> str:
    return f"{EGRESS_MOUNT}/{egress.socket_path.name}"


def relay_command(egress: Egress, python: str) -> list[str]:
    """`python -I -S relay.py ... --`, to put in front of the command; -I -S for a fast, clean start."""
    forwards = [(f.listen_port, f.target_host, f.target_port) for f in egress.forwards]
    return [python, "-I", "-S", RELAY_MOUNT, *relay.build_args(socket_in_sandbox(egress), egress.proxy_port, forwards),
            "--"]


def proxy_env(egress: Egress) -> dict[str, str]:
    url = f"http://127.0.0.1:{egress.proxy_port}"
    return {"HTTP_PROXY": url, "HTTPS_PROXY": url, "http_proxy": url, "https_proxy": url,
            "NO_PROXY": NO_PROXY, "no_proxy": NO_PROXY}


def worker_python() -> tuple[str, Path | None]:
    """The worker's own interpreter (symlinks resolved) and its install prefix to bind, None under /usr.

    A venv's python is a symlink into the base install, which must be visible for the stdlib.
    """
    executable = Path(sys.executable).resolve()
    prefix = executable.parent.parent
    return str(executable), None if prefix.is_relative_to("/usr") else prefix
