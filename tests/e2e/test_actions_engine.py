"""runner: actions end to end: the dispatch, the workflow played as GitHub Actions runs it, the callbacks,
and the same PR, check run and comment as a sandbox run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.conftest import REPO

DRAFTSMITH = Path(sys.executable).parent / "draftsmith"
WORKFLOW = (Path(__file__).resolve().parents[2] / "workflows" / "draftsmith.yml").read_text()
ACTIONS_CONFIG = "runner: actions\nagent: command\ncommand: \"sed -i 's/tpyo/typo/' README.md && echo fixed\"\n"


def _dispatched(scene, fakehub):
    return scene.wait_for(lambda: fakehub.repo(REPO).dispatches[:1], what="a repository_dispatch")[0]


def _play_runner(fakehub, payload: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run the workflow's `draftsmith actions-run` step with the checkout, event file and env Actions gives it."""
    workspace = tmp_path / "runner-workspace"
    subprocess.run(["git", "clone", "-q", fakehub.authenticated_clone_url(REPO), str(workspace)], check=True)
    subprocess.run(["git", "-C", str(workspace), "checkout", "-q", payload["base"]["sha"]], check=True)
    subprocess.run(["git", "-C", str(workspace), "remote", "remove", "origin"], check=True)  # persist-credentials: false
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "draftsmith-run", "client_payload": payload,
                                 "repository": {"full_name": REPO}}))
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8", "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "repository_dispatch", "GITHUB_EVENT_PATH": str(event),
        "GITHUB_WORKSPACE": str(workspace), "RUNNER_TEMP": str(tmp_path), "GITHUB_REPOSITORY": REPO,
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    return subprocess.run([str(DRAFTSMITH), "actions-run"], env=env, cwd=workspace, capture_output=True,
                          text=True, timeout=120)


def test_an_actions_task_ends_in_the_same_ready_pull_request_as_a_sandbox_run(scene, fakehub, tmp_path):
    # Given a repository that runs Draftsmith on its own Actions runners
    scene.repo(ACTIONS_CONFIG, files={".github/workflows/draftsmith.yml": WORKFLOW})
    number = fakehub.open_issue(REPO, "Fix typo in README", "The README says tpyo.")

    # When alice assigns the bot, a dispatch reaches GitHub and starts the workflow, titled with our run id
    fakehub.assign(REPO, number, scene.bot)
    dispatch = _dispatched(scene, fakehub)
    payload = dispatch.client_payload
    assert dispatch.event_type == "draftsmith-run"
    text = json.dumps(payload)
    assert "ghs_" not in text and fakehub.webhook_secret not in text and "PRIVATE KEY" not in text
    # The fake records the dispatch a moment before the workflow run it starts.
    [workflow_run] = scene.wait_for(lambda: list(fakehub.state.workflow_runs.values()), what="the workflow run")
    assert workflow_run.display_title == f"Draftsmith run {payload['run_id']} (task {payload['task_id']})"
    [task] = scene.tasks()
    run = scene.wait_for(lambda: (r := scene.runs(task.id)[0]).worker == "actions" and r.actions_run_id and r,
                         what="the run linked to its workflow run")
    assert scene.tasks()[0].status == "running" and run.actions_run_id == workflow_run.id

    # And the runner runs the agent and reports back
    done = _play_runner(fakehub, payload, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    [task] = scene.wait_settled()

    # Then GitHub shows what a sandbox run would have produced
    assert task.status == "succeeded", task.status_reason
    [pr] = scene.pulls()
    assert pr.pull.draft is False and f"Closes #{number}" in pr.body
    assert task.head_sha in fakehub.state.verified_commits
    [check] = scene.check_runs()
    assert (check.status, check.conclusion) == ("completed", "success")
    [progress] = [c for c in scene.bot_comments(number) if "draftsmith:progress" in c.body]
    assert "Done" in progress.body
    assert any("fixed" in line.text for line in scene.logs(scene.runs(task.id)[0].id))


def test_a_replayed_or_foreign_callback_changes_nothing(scene, fakehub, draftsmith, tmp_path):
    scene.repo(ACTIONS_CONFIG, files={".github/workflows/draftsmith.yml": WORKFLOW})
    number = fakehub.open_issue(REPO, "Fix typo in README", "")
    fakehub.assign(REPO, number, scene.bot)
    payload = _dispatched(scene, fakehub).client_payload
    scene.wait_for(lambda: scene.runs(scene.tasks()[0].id)[0].worker == "actions", what="the dispatch to finish")
    url = payload["callback"]["url"]
    result = {"events": [{"type": "result", "success": True, "summary": "done", "patch": ""}]}
    # A wrong credential, and an unsigned OIDC-looking token, are refused
    for token in ("dsr_wrong", "eyJhbGciOiJub25lIn0.eyJyZXBvc2l0b3J5Ijoib2N0by9kZW1vIn0."):
        refused = httpx.post(url, json=result, headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code in (401, 403)
    scene.app.join_deliveries()
    assert scene.tasks()[0].status == "running"
    # The real credential's result is taken once; its replay is refused
    good = {"Authorization": f"Bearer {payload['callback']['token']}"}
    assert httpx.post(url, json=result, headers=good, timeout=60).status_code < 300
    assert httpx.post(url, json=result, headers=good, timeout=60).status_code == 401
    [task] = scene.wait_settled()
    assert task.status == "succeeded" and task.status_reason == "no changes"
    assert scene.pulls() == []


def test_a_workflow_run_that_ends_without_reporting_ends_the_task(scene, fakehub, draftsmith):
    scene.repo(ACTIONS_CONFIG, files={".github/workflows/draftsmith.yml": WORKFLOW})
    number = fakehub.open_issue(REPO, "Fix typo in README", "")
    fakehub.assign(REPO, number, scene.bot)
    _dispatched(scene, fakehub)
    scene.wait_for(lambda: scene.runs(scene.tasks()[0].id)[0].worker == "actions", what="the dispatch to finish")
    [workflow_run] = scene.wait_for(lambda: list(fakehub.state.workflow_runs.values()), what="the workflow run")
    httpx.post(f"{fakehub.api_url}/_fakehub/workflow-runs/{workflow_run.id}",
               json={"status": "completed", "conclusion": "failure"}).raise_for_status()
    [task] = scene.wait_settled()
    assert task.status == "failed" and "without reporting" in task.status_reason
    [check] = scene.check_runs()
    assert check.conclusion == "failure"
    assert "Failed" in [c for c in scene.bot_comments(number) if "draftsmith:progress" in c.body][0].body


def test_cancel_cancels_the_actions_run_through_the_api(scene, fakehub, draftsmith):
    scene.repo(ACTIONS_CONFIG, files={".github/workflows/draftsmith.yml": WORKFLOW})
    number = fakehub.open_issue(REPO, "Fix typo in README", "")
    fakehub.assign(REPO, number, scene.bot)
    _dispatched(scene, fakehub)
    scene.wait_for(lambda: scene.runs(scene.tasks()[0].id)[0].actions_run_id, what="the linked workflow run")
    fakehub.comment(REPO, number, "/agent cancel")
    [task] = scene.wait_settled()
    assert task.status == "cancelled"
    [workflow_run] = fakehub.state.workflow_runs.values()
    assert (workflow_run.status, workflow_run.conclusion) == ("completed", "cancelled")
    assert any(r.method == "POST" and r.path.endswith(f"/actions/runs/{workflow_run.id}/cancel")
               for r in fakehub.requests())


def test_a_repository_without_the_workflow_gets_told_how_to_add_it(scene, fakehub, draftsmith):
    scene.repo(ACTIONS_CONFIG)
    number = fakehub.open_issue(REPO, "Fix typo in README", "")
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()
    assert task.status == "failed" and ".github/workflows/draftsmith.yml" in task.status_reason
    assert fakehub.repo(REPO).dispatches == []
    progress = [c for c in scene.bot_comments(number) if "draftsmith:progress" in c.body][0]
    assert ".github/workflows/draftsmith.yml" in progress.body
