"""Start a run on the repository's own GitHub Actions runners: the dispatch payload and the dispatch call."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from githubkit.exception import RequestFailed

from app.models import Run, Task

EVENT_TYPE = "draftsmith-run"
WORKFLOW_PATH = ".github/workflows/draftsmith.yml"
PAYLOAD_VERSION = 2
# GitHub refuses a client_payload with more than 10 top-level keys or of 64 KB or more
# (REST docs, "Create a repository dispatch event").
MAX_TOP_LEVEL_KEYS = 10
MAX_PAYLOAD_BYTES = 64 * 1024
# Keys that must never travel in a payload anyone with read access to the workflow run may see.
_FORBIDDEN_KEY = re.compile(r"api_key|apikey|github_token|installation_token|private_key|password", re.I)

INSTALL_HINT = (
    "Copy `workflows/draftsmith.yml` from Draftsmith into `.github/workflows/draftsmith.yml` on the "
    "default branch (GitHub only starts `repository_dispatch` workflows from there)."
)


class DispatchPayloadTooLarge(ValueError):
    """The payload would break GitHub's 64 KB client_payload limit (usually a very long prompt)."""


@dataclass(frozen=True)
class DispatchOutcome:
    ok: bool
    reason: str = ""
    fix_hint: str = ""
    status: int | None = None


def build_dispatch_payload(
    task: Task,
    run: Run,
    callback_url: str,
    callback_token: str | None,
    oidc_audience: str | None,
    *,
    prompt: str | None = None,
    agent_options: Mapping[str, Any] | None = None,
    time_limit_seconds: int | None = None,
    test_command: str | None = None,
    heartbeat_seconds: float | None = None,
    install: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The body of `POST /repos/{o}/{r}/dispatches` that starts `run` of `task` in Actions.

    `prompt` is the full agent prompt (defaults to the task's instruction); `agent_options` carries
    adapter settings read from the repository config on the default branch (e.g. `command` for the
    command agent), so a branch cannot change them. `callback_token=None` sends no credential: the
    runner must then prove itself with an OIDC token. `install` says what the workflow installs (the
    server's wheel and its hash, or the operator's pinned requirement); `test_command` is the repository's
    `test:`, run after the agent; the runner sends a heartbeat every `heartbeat_seconds` while it works.
    Never pass GitHub tokens or provider keys here.
    """
    options = dict(agent_options or {})
    bad = [key for key in options if _FORBIDDEN_KEY.search(key)]
    if bad:
        raise ValueError(f"agent options must not carry credentials: {', '.join(bad)}")
    callback: dict[str, Any] = {"url": callback_url}
    if callback_token is not None:
        callback["token"] = callback_token
    if oidc_audience is not None:
        callback["oidc_audience"] = oidc_audience
    if heartbeat_seconds is not None:
        callback["heartbeat_seconds"] = heartbeat_seconds
    client_payload: dict[str, Any] = {
        "version": PAYLOAD_VERSION,
        "task_id": task.id,
        "run_id": run.id,
        "repository": task.repo_full_name,
        "agent": {"name": task.agent or "command", "model": task.model, "options": options},
        "prompt": prompt if prompt is not None else task.instruction,
        "base": {"ref": task.base_branch, "sha": task.base_sha},
        "callback": callback,
        "run": {"time_limit_seconds": time_limit_seconds, "test": test_command},
        "install": dict(install or {}),
    }
    assert len(client_payload) <= MAX_TOP_LEVEL_KEYS
    size = len(json.dumps(client_payload, separators=(",", ":")).encode())
    if size >= MAX_PAYLOAD_BYTES:
        raise DispatchPayloadTooLarge(
            f"the dispatch payload is {size} bytes; GitHub accepts less than {MAX_PAYLOAD_BYTES}"
        )
    return {"event_type": EVENT_TYPE, "client_payload": client_payload}


def run_name(run_id: int, task_id: int) -> str:
    """The workflow's `run-name` for a dispatched run (it must match workflows/draftsmith.yml)."""
    return f"Draftsmith run {run_id} (task {task_id})"


_RUN_NAME = re.compile(r"^Draftsmith run (\d+) \(task (\d+)\)$")


def parse_run_name(display_title: str | None) -> tuple[int, int] | None:
    """(run id, task id) from a `workflow_run`/`workflow_job` display title, or None if not ours."""
    match = _RUN_NAME.match(display_title or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


async def dispatch(gh, owner: str, repo: str, payload: Mapping[str, Any]) -> DispatchOutcome:
    """Send the repository_dispatch; map GitHub's refusals to a reason and the fix a user can apply.

    `gh` is a githubkit client authenticated as the installation. A 204 only means GitHub accepted the
    event: it says nothing about a workflow listening (see `check_workflow_installed`).
    """
    try:
        await gh.arequest("POST", f"/repos/{owner}/{repo}/dispatches", json=dict(payload))
    except RequestFailed as exc:
        status = exc.response.status_code
        message = _github_message(exc)
        if status in (403, 404):
            # An App without `contents: write` gets 403 "Resource not accessible by integration";
            # a repository the installation cannot see answers 404.
            return DispatchOutcome(
                False,
                f"GitHub refused to start the Actions run ({status}: {message}).",
                "Draftsmith needs the **Contents: read and write** repository permission to start "
                "workflows with `repository_dispatch`: an organisation owner can accept the updated "
                "permissions under Settings → GitHub Apps → Draftsmith, and the repository must be "
                "among those the app is installed on.",
                status,
            )
        if status == 422:
            return DispatchOutcome(
                False,
                f"GitHub rejected the dispatch payload (422: {message}).",
                "This is a Draftsmith bug or a prompt too large for a dispatch; please report it "
                "with this message, or use `runner: sandbox` for this repository meanwhile.",
                status,
            )
        return DispatchOutcome(False, f"GitHub answered {status}: {message}.", "Try again in a few minutes.", status)
    return DispatchOutcome(True, status=204)


async def check_workflow_installed(gh, owner: str, repo: str, ref: str | None, path: str = WORKFLOW_PATH) -> bool:
    """True if `path` exists on `ref` (pass the default branch: dispatch only runs workflows from there)."""
    params = {"ref": ref} if ref else None
    try:
        await gh.arequest("GET", f"/repos/{owner}/{repo}/contents/{path}", params=params)
    except RequestFailed as exc:
        if exc.response.status_code == 404:
            return False
        raise
    return True


def missing_workflow_outcome(path: str = WORKFLOW_PATH) -> DispatchOutcome:
    return DispatchOutcome(False, f"This repository has no `{path}` workflow, so no run would start.", INSTALL_HINT)


async def find_workflow_run(gh, owner: str, repo: str, *, run_id: int, task_id: int, actions_run_id: int | None,
                            since: datetime | None) -> dict[str, Any] | None:
    """GitHub's view of the workflow run our dispatch of `run_id` started, or None if GitHub has none.

    By id once a webhook linked it; otherwise by its run-name among repository_dispatch runs created
    since the dispatch (a lost `requested` webhook must not hide it).
    """
    if actions_run_id:
        try:
            return (await gh.arequest("GET", f"/repos/{owner}/{repo}/actions/runs/{actions_run_id}")).json()
        except RequestFailed as exc:
            if exc.response.status_code == 404:
                return None
            raise
    params: dict[str, Any] = {"event": "repository_dispatch", "per_page": 100}
    if since is not None:
        params["created"] = ">=" + (since - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    listed = (await gh.arequest("GET", f"/repos/{owner}/{repo}/actions/runs", params=params)).json()
    title = run_name(run_id, task_id)
    return next((r for r in listed.get("workflow_runs", []) if r.get("display_title") == title), None)


async def cancel_actions_run(gh, owner: str, repo: str, actions_run_id: int) -> bool:
    """Ask GitHub to cancel a workflow run; False if it had already finished (409) or is gone (404)."""
    try:
        await gh.arequest("POST", f"/repos/{owner}/{repo}/actions/runs/{actions_run_id}/cancel")
    except RequestFailed as exc:
        if exc.response.status_code in (404, 409):
            return False
        raise
    return True


def _github_message(exc: RequestFailed) -> str:
    try:
        return str(exc.response.raw_response.json().get("message") or "")[:300]
    except (ValueError, AttributeError):
        return exc.response.raw_response.text[:300]
