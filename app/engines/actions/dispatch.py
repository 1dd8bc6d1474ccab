"""The dispatch that starts a run on the repository's own Actions runners (pure): its payload and run name.

The calls that send it, follow it and cancel it are in app.github.actions_api, with every other write to GitHub.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from app.models import Run, Task

EVENT_TYPE = "draftsmith-run"
PAYLOAD_VERSION = 2
# GitHub refuses a client_payload with more than 10 top-level keys or of 64 KB or more
# (REST docs, "Create a repository dispatch event").
MAX_TOP_LEVEL_KEYS = 10
MAX_PAYLOAD_BYTES = 64 * 1024
# Keys that must never travel in a payload anyone with read access to the workflow run may see.
_FORBIDDEN_KEY = re.compile(r"api_key|apikey|github_token|installation_token|private_key|password", re.I)


class DispatchPayloadTooLarge(ValueError):
    """The payload would break GitHub's 64 KB client_payload limit (usually a very long prompt)."""


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
    start: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The body of `POST /repos/{o}/{r}/dispatches` that starts `run` of `task` in Actions.

    `prompt` is the full agent prompt (defaults to the task's instruction); `agent_options` carries
    adapter settings read from the repository config on the default branch (e.g. `command` for the
    command agent), so a branch cannot change them. `callback_token=None` sends no credential: the
    runner must then prove itself with an OIDC token. `install` says what the workflow installs (the
    server's wheel and its hash, or the operator's pinned requirement); `test_command` is the repository's
    `test:`, run after the agent; the runner sends a heartbeat every `heartbeat_seconds` while it works.
    `start` is the (branch, sha) the runner checks out and diffs against: the PR branch's head; by default
    the task's base. Never pass GitHub tokens or provider keys here.
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
        "base": {"ref": start[0], "sha": start[1]} if start else {"ref": task.base_branch, "sha": task.base_sha},
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
