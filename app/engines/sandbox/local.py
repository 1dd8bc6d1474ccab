"""The unsafe-local backend: runs the command as the worker's user with no isolation, only limits."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from app.logs import get_logger
from app.engines.sandbox import etc
from app.engines.sandbox._process import base_env, prlimit_prefix, supervise
from app.engines.sandbox.base import OutputCallback, SandboxResult, SandboxSpec

log = get_logger(component="sandbox")

# The first line of every run's output, so whoever reads the log knows what the agent could do.
NOT_ISOLATED = (
    "WARNING: DRAFTSMITH_SANDBOX=unsafe-local: nothing is isolated. The agent runs as the worker's user "
    "and can reach the network, the app's files, its database and its secrets."
)


class UnsafeLocalSandbox:
    """For development only: the agent can read everything the worker can (keys, database, files)."""

    name = "unsafe-local"
    isolated = False

    def workspace_path(self, spec: SandboxSpec) -> str:
        return str(spec.workspace.resolve())

    def run(self, spec: SandboxSpec, *, on_output: OutputCallback, cancel: threading.Event) -> SandboxResult:
        log.warning("running agent without isolation (DRAFTSMITH_SANDBOX=unsafe-local)", argv0=spec.argv[0])
        on_output("system", NOT_ISOLATED)
        home = tempfile.mkdtemp(prefix="draftsmith-home-")
        try:
            # The environment is still minimal: the worker's own variables never reach the agent.
            env = base_env(spec, home=home)
            # There is no egress to route (the host network is right there), but an operator CA still counts.
            if spec.extra_ca_pem:
                env.update(etc.ca_env(str(etc.write_ca_bundle(Path(home) / ".ca-certificates.crt", spec.extra_ca_pem))))
            # nproc is per user, shared with the worker itself, so it is left to the caller here.
            return supervise(
                [*prlimit_prefix(spec, nproc=False), *spec.argv],
                env=env,
                cwd=self.workspace_path(spec),
                stdin=spec.stdin,
                timeout_s=spec.timeout_s,
                max_output_bytes=spec.max_output_bytes,
                on_output=on_output,
                cancel=cancel,
            )
        finally:
            shutil.rmtree(home, ignore_errors=True)
