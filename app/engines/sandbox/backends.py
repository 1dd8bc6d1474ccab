"""Which sandbox backend runs a run: the one `settings.sandbox` names, with no silent fallback."""

from __future__ import annotations

from app.engines.sandbox import bubblewrap, docker, local
from app.engines.sandbox.base import Sandbox, SandboxUnavailable


def select_sandbox(settings) -> Sandbox:
    """The backend `settings.sandbox` names; "local" refuses to run without bubblewrap rather than degrade."""
    kind = settings.sandbox
    if kind == "local":
        binary = bubblewrap.find_bwrap()
        if binary is None:
            raise SandboxUnavailable(
                "DRAFTSMITH_SANDBOX=local needs bubblewrap to isolate agents, and `bwrap` is not on PATH. "
                "Install it (Debian/Ubuntu: `apt-get install bubblewrap`), or set "
                "DRAFTSMITH_SANDBOX=unsafe-local to run agents WITHOUT isolation (they can then read "
                "the app's private key, database and environment)."
            )
        return bubblewrap.BubblewrapSandbox(binary)
    if kind == "unsafe-local":
        return local.UnsafeLocalSandbox()
    if kind == "docker":
        return docker.DockerSandbox(image=getattr(settings, "docker_image", None) or docker.DEFAULT_IMAGE)
    raise SandboxUnavailable(f"unknown sandbox {kind!r}; choose local, unsafe-local or docker")
