"""The sandbox interface: what to run (SandboxSpec) and how it ended (SandboxResult).

Backends (backends.py chooses): `bubblewrap` (settings.sandbox == "local"), `unsafe-local` (no isolation), `docker`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# Called with ("stdout" | "stderr" | "system", one line without its newline), in order, from one thread.
OutputCallback = Callable[[str, str], None]

# Where the workspace appears inside an isolating sandbox; unsafe-local runs in the real path instead.
WORKSPACE_MOUNT = "/workspace"
SANDBOX_HOME = "/home/sandbox"
# Where an isolating sandbox shows the directory holding the egress proxy's socket.
EGRESS_MOUNT = "/run/draftsmith"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxUnavailable(RuntimeError):
    """The configured sandbox cannot run on this host; the message says what to do."""


@dataclass
class Forward:
    """A loopback port inside the sandbox that reaches `target_host:target_port` through the proxy.

    For clients that ignore proxy variables, e.g. an agent whose model endpoint is http://127.0.0.1:8799
    gets Forward(8799, "127.0.0.1", 8799), so the same URL works inside.
    """

    listen_port: int
    target_host: str
    target_port: int


@dataclass
class Egress:
    """The only way out of an isolating sandbox: a per-run egress proxy listening on a unix socket.

    The socket's directory is bound into the sandbox (at EGRESS_MOUNT), so it should hold nothing else;
    the proxy decides what each connection may reach.
    """

    socket_path: Path
    forwards: list[Forward] = field(default_factory=list)
    # Inside the sandbox, HTTP(S)_PROXY point at 127.0.0.1:proxy_port.
    proxy_port: int = 3128


@dataclass
class SandboxSpec:
    """One command to run in a workspace, with the only environment and files it may see."""

    argv: list[str]
    workspace: Path
    env: dict[str, str] = field(default_factory=dict)
    # Read-only paths visible at the same path inside, e.g. an agent's venv and the base Python it links to.
    extra_ro_binds: list[Path] = field(default_factory=list)
    # Writable paths visible at the same path inside (e.g. a per-run cache). Owned by the sandbox user.
    writable_binds: list[Path] = field(default_factory=list)
    timeout_s: float = 1800.0
    # Address-space limit; runtimes like node reserve far more virtual memory than they use, so be generous.
    memory_mb: int = 4096
    # Processes and threads of the sandbox user (RLIMIT_NPROC; not enforced for root, see bubblewrap.py).
    max_processes: int = 512
    max_output_bytes: int = 10 * 1024 * 1024
    max_file_bytes: int = 2 * 1024 * 1024 * 1024
    # None: no network at all (only the sandbox's own loopback). The host network is never shared.
    egress: Egress | None = None
    # An operator CA (PEM) trusted inside besides the host's roots, e.g. for a TLS-inspecting proxy.
    extra_ca_pem: str | None = None
    stdin: str | None = None
    # Plan mode: the agent may read the code but not change it.
    workspace_readonly: bool = False


@dataclass
class SandboxResult:
    exit_code: int | None
    timed_out: bool = False
    cancelled: bool = False
    output_truncated: bool = False
    duration_s: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not (self.timed_out or self.cancelled)


class Sandbox(Protocol):
    """Runs a spec to completion, streaming output; stops the whole process tree on cancel or timeout."""

    name: str
    # False only for unsafe-local: the command can reach the network and everything the worker can.
    isolated: bool

    def run(self, spec: SandboxSpec, *, on_output: OutputCallback, cancel: threading.Event) -> SandboxResult: ...

    def workspace_path(self, spec: SandboxSpec) -> str:
        """The workspace's path as the command sees it (for prompt files and `{workspace}` in commands)."""
        ...
