"""Play the GitHub Actions side of a dispatched run: the workflow's install step and `draftsmith actions-run`,
with the checkout, event file and environment a runner gives them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from app.engines.actions.runner_package import requirements

DRAFTSMITH = Path(sys.executable).parent / "draftsmith"
WORKFLOW_FILE = Path(__file__).resolve().parents[2] / "workflows" / "draftsmith.yml"
WORKFLOW = WORKFLOW_FILE.read_text()


def write_event(tmp_path: Path, payload: dict, repo: str) -> Path:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "draftsmith-run", "client_payload": payload,
                                 "repository": {"full_name": repo}}))
    return event


def runner_env(tmp_path: Path, event: Path, workspace: Path, repo: str, path: str | None = None) -> dict[str, str]:
    (tmp_path / "home").mkdir(exist_ok=True)
    return {
        "PATH": path or os.environ["PATH"], "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8",
        "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "repository_dispatch", "GITHUB_EVENT_PATH": str(event),
        "GITHUB_WORKSPACE": str(workspace), "RUNNER_TEMP": str(tmp_path), "GITHUB_REPOSITORY": repo,
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }


def checkout(fakehub, repo: str, sha: str, tmp_path: Path) -> Path:
    """actions/checkout of `sha` with persist-credentials: false (no remote holding a token)."""
    workspace = tmp_path / "runner-workspace"
    subprocess.run(["git", "clone", "-q", fakehub.authenticated_clone_url(repo), str(workspace)], check=True)
    subprocess.run(["git", "-C", str(workspace), "checkout", "-q", sha], check=True)
    subprocess.run(["git", "-C", str(workspace), "remote", "remove", "origin"], check=True)
    return workspace


def play_runner(fakehub, payload: dict, tmp_path: Path, repo: str, *, draftsmith: Path = DRAFTSMITH,
                timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the workflow's `draftsmith actions-run` step for `payload`."""
    workspace = checkout(fakehub, repo, payload["base"]["sha"], tmp_path)
    env = runner_env(tmp_path, write_event(tmp_path, payload, repo), workspace, repo)
    return subprocess.run([str(draftsmith), "actions-run"], env=env, cwd=workspace, capture_output=True,
                          text=True, timeout=timeout)


def install_step_script() -> str:
    workflow = yaml.safe_load(WORKFLOW)
    [step] = [s for s in workflow["jobs"]["agent"]["steps"] if s.get("name") == "Install Draftsmith"]
    return step["run"]


def runner_venv(tmp_path: Path, *, with_requirements: bool = True) -> Path:
    """A fresh virtualenv with pip and, unless told otherwise, the runner's pinned dependencies already (as
    a runner's cache would), so the install step needs no index; Draftsmith itself is not in it."""
    venv = tmp_path / "runner-venv"
    subprocess.run(["uv", "venv", "-q", "--seed", "--python", sys.executable, str(venv)], check=True)
    if with_requirements:
        subprocess.run(["uv", "pip", "install", "-q", "--python", str(venv / "bin" / "python"), *requirements()],
                       check=True)
    return venv


def run_install_step(payload: dict, tmp_path: Path, venv: Path, repo: str) -> subprocess.CompletedProcess:
    """The workflow's install step, run with bash as Actions runs `run:` scripts, `python` being the venv's."""
    script = tmp_path / "install-step.sh"
    script.write_text(install_step_script())
    event = write_event(tmp_path, payload, repo)
    env = runner_env(tmp_path, event, tmp_path, repo, path=f"{venv / 'bin'}:{os.environ['PATH']}")
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], env=env,
                          capture_output=True, text=True, timeout=300)
