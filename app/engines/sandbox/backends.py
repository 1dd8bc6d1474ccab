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


# What the container needs for bubblewrap inside it; README "Running in Docker" says why each is needed.
DOCKER_FLAGS = ("--security-opt seccomp=unconfined --security-opt apparmor=unconfined "
                "--security-opt systempaths=unconfined")


def sandbox_problem(settings) -> str | None:
    """Why agent runs cannot work with the configured sandbox on this host, or None when a probe ran.

    Starts one `true` in the real backend (a few milliseconds under bubblewrap), so a refused user
    namespace, a missing binary or an unreachable Docker daemon is said at start-up, not on every run.
    """
    try:
        sandbox = select_sandbox(settings)
    except SandboxUnavailable as exc:
        return str(exc)
    if isinstance(sandbox, bubblewrap.BubblewrapSandbox):
        return _probe_bubblewrap(sandbox)
    if isinstance(sandbox, docker.DockerSandbox):
        return _probe_docker(sandbox)
    return None


def _probe_bubblewrap(sandbox: bubblewrap.BubblewrapSandbox) -> str | None:
    import tempfile
    import threading
    from pathlib import Path

    from app.engines.sandbox.base import SandboxSpec

    output: list[str] = []
    with tempfile.TemporaryDirectory(prefix="draftsmith-probe-") as workspace:
        try:
            result = sandbox.run(SandboxSpec(argv=["true"], workspace=Path(workspace), timeout_s=20),
                                 on_output=lambda _stream, line: output.append(line), cancel=threading.Event())
        except OSError as exc:
            output.append(str(exc))
            result = None
    if result is not None and result.succeeded:
        return None
    said = " ".join(line.strip() for line in output[-3:] if line.strip()) or "no output"
    return (f"DRAFTSMITH_SANDBOX=local: bubblewrap cannot create a sandbox here ({said}), so every agent run "
            "would fail. It needs unprivileged user namespaces and its own mounts. In Docker, start the "
            f"container with `{DOCKER_FLAGS}` (README, \"Running in Docker\"); on a host, allow user "
            "namespaces (`sysctl kernel.unprivileged_userns_clone=1`; on Ubuntu 24.04 also "
            "`sysctl kernel.apparmor_restrict_unprivileged_userns=0`), or set DRAFTSMITH_SANDBOX=docker.")


def _probe_docker(sandbox: docker.DockerSandbox) -> str | None:
    import subprocess

    try:
        done = subprocess.run([sandbox.docker, "version", "--format", "{{.Server.Version}}"], capture_output=True,
                              text=True, timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        said = str(exc)
    else:
        if done.returncode == 0:
            return None
        said = " ".join((done.stderr or done.stdout).split())[-400:] or f"exit {done.returncode}"
    return (f"DRAFTSMITH_SANDBOX=docker: the Docker daemon cannot be reached ({said}), so every agent run "
            "would fail. Start Docker (or give this user access to its socket), or set "
            "DRAFTSMITH_SANDBOX=local to use bubblewrap.")
