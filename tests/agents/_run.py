"""Run an Invocation the way a runner does, minus the sandbox: write its files, start argv, collect output."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from app.agents.base import AgentRequest, Invocation


@dataclass
class Finished:
    exit_code: int
    stdout: str
    stderr: str


def run_unsandboxed(request: AgentRequest, invocation: Invocation, timeout: float = 60) -> Finished:
    request.artifacts_dir.mkdir(parents=True, exist_ok=True)
    for relative, content in invocation.files.items():
        path = request.artifacts_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    for key in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        if key in invocation.env:
            os.makedirs(invocation.env[key], exist_ok=True)
    # The runner's minimal base environment: nothing of ours leaks in besides PATH and a locale.
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **invocation.env}
    done = subprocess.run(
        invocation.argv,
        cwd=invocation.cwd or request.workspace,
        env=env,
        input=invocation.stdin or "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Finished(done.returncode, done.stdout, done.stderr)
