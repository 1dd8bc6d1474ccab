"""runner: actions end to end: the dispatch, the workflow played as GitHub Actions runs it, the callbacks,
and the same PR, check run and comment as a sandbox run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx

from tests.e2e.conftest import REPO
from tests.support.actions_runner import WORKFLOW, play_runner

ACTIONS_CONFIG = "runner: actions\nagent: command\ncommand: \"sed -i 's/tpyo/typo/' README.md && echo fixed\"\n"


def _dispatched(scene, fakehub):
    return scene.wait_for(lambda: fakehub.repo(REPO).dispatches[:1], what="a repository_dispatch")[0]


def _changed_files(fakehub, sha: str) -> list[str]:
    done = subprocess.run(["git", "--git-dir", fakehub.repo(REPO).git_dir, "diff", "--name-only", f"{sha}~1", sha],
                          capture_output=True, text=True, check=True)
    return done.stdout.split()


def _play_runner(fakehub, payload: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    return play_runner(fakehub, payload, tmp_path, REPO)


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
    check = scene.check_run()
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
    [pr] = scene.pulls()
    assert pr.state == "closed", "nothing to propose: the draft is closed"


def test_a_workflow_run_that_ends_without_reporting_ends_the_task(scene, fakehub, draftsmith):
    scene.repo(ACTIONS_CONFIG, files={".github/workflows/draftsmith.yml": WORKFLOW})
    number = fakehub.open_issue(REPO, "Fix typo in README", "")
    fakehub.assign(REPO, number, scene.bot)
    _dispatched(scene, fakehub)
    scene.wait_for(lambda: scene.runs(scene.tasks()[0].id)[0].stage == "agent", what="the dispatch to finish")
    [workflow_run] = scene.wait_for(lambda: list(fakehub.state.workflow_runs.values()), what="the workflow run")
    httpx.post(f"{fakehub.api_url}/_fakehub/workflow-runs/{workflow_run.id}",
               json={"status": "completed", "conclusion": "failure"}).raise_for_status()
    [task] = scene.wait_settled()
    assert task.status == "failed" and "without reporting" in task.status_reason
    check = scene.check_run()
    assert check.conclusion == "failure"
    [progress] = [c for c in scene.bot_comments(number) if "draftsmith:progress" in c.body]
    assert "Failed" in progress.body
    # It ended in another process than the one that dispatched it: the stage comes from the run's row.
    assert "- [x] Setting up workspace\n- [ ] **Agent working** ❌" in progress.body
    assert "**Agent working** ❌" in check.output["text"]


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


def _dispatch_with_tests(scene, fakehub, test: str) -> dict:
    scene.repo(ACTIONS_CONFIG + f"test: {json.dumps(test)}\n", files={".github/workflows/draftsmith.yml": WORKFLOW})
    fakehub.assign(REPO, fakehub.open_issue(REPO, "Fix typo in README", ""), scene.bot)
    return _dispatched(scene, fakehub).client_payload


def test_the_runner_runs_the_repository_tests_and_a_failure_leaves_the_pull_request_a_draft(scene, fakehub, tmp_path):
    # The test insists on the misspelling, so the agent's fix fails it
    payload = _dispatch_with_tests(scene, fakehub, "grep -q tpyo README.md")
    assert payload["run"]["test"] == "grep -q tpyo README.md"

    done = _play_runner(fakehub, payload, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    [task] = scene.wait_settled()

    assert task.status == "succeeded" and "tests failed (`grep -q tpyo README.md`)" in task.status_reason
    [pr] = scene.pulls()
    assert pr.pull.draft is True
    assert scene.runs(task.id)[0].tests_passed is False
    logs = [line.text for line in scene.logs(scene.runs(task.id)[0].id)]
    assert "tests: grep -q tpyo README.md" in logs and any(t.startswith("tests: failed") for t in logs)


def test_passing_repository_tests_on_the_runner_mark_the_pull_request_ready(scene, fakehub, tmp_path):
    payload = _dispatch_with_tests(scene, fakehub, "grep -q typo README.md && touch .test-cache")

    assert _play_runner(fakehub, payload, tmp_path).returncode == 0
    [task] = scene.wait_settled()
    assert task.status == "succeeded", task.status_reason
    [pr] = scene.pulls()
    assert pr.pull.draft is False and scene.runs(task.id)[0].tests_passed is True
    # The patch was taken before the tests ran: what they left behind is not part of the change
    assert _changed_files(fakehub, task.head_sha) == ["README.md"]
