"""The GitHub Actions API as the engine uses it: send a repository_dispatch, find and cancel its workflow run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from githubkit.exception import RequestFailed

WORKFLOW_PATH = ".github/workflows/draftsmith.yml"
INSTALL_HINT = (
    "Copy `workflows/draftsmith.yml` from Draftsmith into `.github/workflows/draftsmith.yml` on the "
    "default branch (GitHub only starts `repository_dispatch` workflows from there)."
)


@dataclass(frozen=True)
class DispatchOutcome:
    ok: bool
    reason: str = ""
    fix_hint: str = ""
    status: int | None = None


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


async def find_workflow_run(gh, owner: str, repo: str, *, title: str, actions_run_id: int | None,
                            since: datetime | None) -> dict[str, Any] | None:
    """GitHub's view of the workflow run titled `title` that our dispatch started, or None if GitHub has none.

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
