"""The pod side of a Kubernetes run (`draftsmith kubernetes-run`): clone, then the Actions runner's contract.

The run's Secret gives the container its payload (with the single-use callback credential), a clone token
for this one repository with `contents: read`, and the agent's provider keys. The clone happens through the
same private repository code the sandbox engine uses, the token travelling only as a git header; the token
is revoked as soon as the clone is done, before the agent starts. From there on it is exactly an Actions
run: `app.engines.actions.runner.execute` runs the agent and the tests, and reports progress, heartbeats
and the patch to the app, which commits, opens the PR and writes the check run. Log lines go to the pod's
output only; the app follows the pod's log.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path

import httpx

from app.engines.actions import runner
from app.engines.actions.agent_user import AGENT_USER_VARIABLE, SHARED
from app.engines.git.private_repo import PrivateRepo
from app.engines.kubernetes.manifests import CLONE_TOKEN_KEY, PAYLOAD_KEY, WORKSPACE
from app.logs import scrub

CLONE_URL = "DRAFTSMITH_CLONE_URL"
GITHUB_API_URL = "DRAFTSMITH_GITHUB_API_URL"
WORKSPACE_VAR = "DRAFTSMITH_WORKSPACE"


class PodRunError(Exception):
    """The run cannot start in this pod; the message goes to the pod's log (and so to the run's log)."""


def _say(text: str) -> None:
    print(f"draftsmith: {text}", flush=True)


def clone(environ: Mapping[str, str], root: Path, payload: dict) -> Path:
    """Clone the run's start commit into `root`/repo; returns that workspace."""
    url, token = environ.get(CLONE_URL), environ.get(CLONE_TOKEN_KEY)
    base = payload.get("base") or {}
    branch, sha = base.get("ref"), base.get("sha")
    if not url or not branch:
        raise PodRunError("the run's pod has no clone URL or branch")
    _say(f"cloning {payload.get('repository')}@{branch}")
    private = PrivateRepo.create(root / "git")
    try:
        private.fetch(url, branch, token)
    except Exception as exc:
        raise PodRunError(scrub(f"could not clone {url}: {exc}", [token or ""])) from None
    workspace = root / "repo"
    private.populate_workspace(workspace, branch, url)
    if sha:
        subprocess.run(["git", "-c", "core.hooksPath=/dev/null", "-C", str(workspace), "checkout", "-q", "--detach",
                        sha], check=True, capture_output=True)
    return workspace


def revoke(environ: Mapping[str, str]) -> None:
    """Give the clone token back at once: nothing in the pod needs GitHub after the clone."""
    token, api = environ.get(CLONE_TOKEN_KEY), environ.get(GITHUB_API_URL)
    if not token or not api:
        return
    try:
        httpx.delete(api.rstrip("/") + "/installation/token", timeout=30,
                     headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"})
    except httpx.HTTPError as exc:  # it lapses within the hour anyway
        _say(f"could not revoke the clone token ({type(exc).__name__})")


async def execute(environ: Mapping[str, str]) -> int:
    """Run one Kubernetes run in this pod; the exit code is the runner's (0 once the result was delivered)."""
    try:
        payload = json.loads(environ.get(PAYLOAD_KEY) or "")
    except ValueError:
        raise PodRunError(f"{PAYLOAD_KEY} is missing or not JSON") from None
    root = Path(environ.get(WORKSPACE_VAR) or WORKSPACE)
    for directory in ("home", "tmp"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    try:
        workspace = clone(environ, root, payload)
    finally:
        revoke(environ)
    event = root / "tmp" / "event.json"
    event.write_text(json.dumps({"action": "draftsmith-run", "client_payload": payload}))
    event.chmod(0o600)
    # What the runner sees: neither the payload's variable nor the (revoked) clone token.
    hidden = {PAYLOAD_KEY, CLONE_TOKEN_KEY}
    runner_env = {key: value for key, value in environ.items() if key not in hidden}
    runner_env.setdefault("RUNNER_TEMP", str(root / "tmp"))
    # A non-root pod with no capabilities cannot switch users, and need not: the pod is the run's own
    # sandbox, the clone token is revoked, and the callback credential speaks for this run alone.
    runner_env.setdefault(AGENT_USER_VARIABLE, SHARED)
    return await runner.execute(runner_env, event_path=event, workspace=workspace, send_logs=False)
