"""The docker backend: one throwaway container per run, driven through the `docker` CLI."""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from pathlib import Path

from app.engines.sandbox import _egress, etc
from app.engines.sandbox._process import supervise
from app.engines.sandbox.base import (
    DEFAULT_PATH,
    EGRESS_MOUNT,
    WORKSPACE_MOUNT,
    OutputCallback,
    SandboxResult,
    SandboxSpec,
)

DEFAULT_IMAGE = "python:3.11-slim"
# The CLI's own settings may pass through; nothing else of the worker's environment does.
_CLI_ENV = ("DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")


class DockerSandbox:
    """Each run in a fresh container with no network but the egress relay (see relay.py)."""

    name = "docker"
    isolated = True

    def __init__(self, image: str = DEFAULT_IMAGE, docker: str = "docker") -> None:
        self.image = image
        self.docker = docker

    def workspace_path(self, spec: SandboxSpec) -> str:
        return WORKSPACE_MOUNT

    def docker_argv(self, spec: SandboxSpec, container: str, ca_bundle: Path) -> list[str]:
        """The `docker run` command line; `ca_bundle` is the host file to show at etc.CA_BUNDLE."""
        ws = str(spec.workspace.resolve())
        argv = [
            self.docker, "run", "--rm", "--name", container,
            # tini as PID 1: when the command exits, the container and the relay beside it end too.
            "--init",
            "--network", "none",
            "--memory", f"{spec.memory_mb}m", "--memory-swap", f"{spec.memory_mb}m",
            "--pids-limit", str(spec.max_processes),
            "--ulimit", f"fsize={spec.max_file_bytes}",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            # The worker's uid, so files the agent writes stay readable and removable by the worker.
            "--user", f"{os.getuid()}:{os.getgid()}",
            "--tmpfs", "/tmp", "--tmpfs", "/home/sandbox",
            "-v", f"{ws}:{WORKSPACE_MOUNT}" + (":ro" if spec.workspace_readonly else ""),
            "-w", WORKSPACE_MOUNT,
            "-v", f"{ca_bundle}:{etc.CA_BUNDLE}:ro",
        ]
        relay: list[str] = []
        if spec.egress is not None:
            argv += ["-v", f"{spec.egress.socket_path.parent.resolve()}:{EGRESS_MOUNT}:ro"]
            argv += ["-v", f"{_egress.RELAY_SCRIPT}:{_egress.RELAY_MOUNT}:ro"]
            # The image's own python3: the worker's interpreter may not run on the image's libc.
            relay = _egress.relay_command(spec.egress, "python3")
        if spec.stdin is not None:
            argv.append("-i")
        for path in spec.extra_ro_binds:
            argv += ["-v", f"{path}:{path}:ro"]
        for path in spec.writable_binds:
            argv += ["-v", f"{path}:{path}"]
        fixed = {"PATH": DEFAULT_PATH, "HOME": "/home/sandbox", "LANG": "C.UTF-8"}
        fixed.update({k: v for k, v in spec.env.items() if k in fixed})
        fixed.update(etc.ca_env())
        if spec.egress is not None:
            fixed.update(_egress.proxy_env(spec.egress))
        for key, value in fixed.items():
            argv += ["-e", f"{key}={value}"]
        for key in spec.env:
            if key not in fixed:
                # `-e NAME` alone: docker copies the value from the CLI's environment, keeping it out of argv.
                argv += ["-e", key]
        return [*argv, self.image, *relay, *spec.argv]

    def run(self, spec: SandboxSpec, *, on_output: OutputCallback, cancel: threading.Event) -> SandboxResult:
        container = f"draftsmith-{uuid.uuid4().hex[:12]}"
        cli_env = {key: os.environ[key] for key in _CLI_ENV if key in os.environ}
        cli_env.update({k: v for k, v in spec.env.items() if k not in ("PATH", "HOME", "LANG")})
        cli_env["PATH"] = os.environ.get("PATH", DEFAULT_PATH)  # to find the docker CLI itself
        cli_env["HOME"] = os.environ.get("HOME", "/")  # the CLI's config, not the container's home

        def stop_container() -> None:
            # Killing the CLI does not stop a container; the engine must be told.
            subprocess.run(
                [self.docker, "kill", container],
                env=cli_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
                check=False,
            )

        with etc.run_dir(spec.workspace) as run_dir:
            ca_bundle = etc.write_ca_bundle(run_dir / "ca-certificates.crt", spec.extra_ca_pem)
            return supervise(
                self.docker_argv(spec, container, ca_bundle),
                env=cli_env,
                cwd=None,
                stdin=spec.stdin,
                timeout_s=spec.timeout_s,
                max_output_bytes=spec.max_output_bytes,
                on_output=on_output,
                cancel=cancel,
                on_stop=stop_container,
            )
