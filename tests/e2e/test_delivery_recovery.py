"""An assignment GitHub could not deliver while the app was down is redelivered once it is up, and acted on once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.deliveries.sweeper import Sweeper
from app.github.render import pr_marker, progress_marker
from app.models import utcnow
from app.tasks.service import TaskService
from tests.e2e.conftest import REPO, Scene, command_config
from tests.support.app_server import free_port


def test_an_assignment_made_while_the_app_was_down_still_becomes_a_pull_request(fakehub, make_draftsmith):
    # Given the app is down: nothing listens where GitHub sends the App's webhooks
    fakehub.webhook_url = f"http://127.0.0.1:{free_port()}/api/github/webhooks"
    scene = Scene(fakehub, None)
    scene.repo(command_config("sed -i 's/tpyo/typo/' README.md && echo fixed the typo"))
    number = fakehub.open_issue(REPO, "Fix typo in README", "The README says tpyo.")

    # When alice assigns the bot, GitHub records the delivery as failed
    fakehub.assign(REPO, number, scene.bot)
    [failed] = fakehub.deliveries("issues", "assigned")
    assert failed.status_code is None and failed.error

    # And then the app starts, its sweeper with it
    scene.app = make_draftsmith(fakehub.env())
    fakehub.webhook_url = scene.app.webhook_url
    sweeper = Sweeper(scene.app.runtime, interval=0.2).start()
    try:
        scene.wait_for(lambda: scene.app.delivery(failed.id), what="the assignment to be redelivered")
        [task] = scene.wait_settled()
    finally:
        sweeper.stop()

    # Then GitHub sent it again under its own guid, once, and the task ran to a pull request
    assert [(d.id, d.redelivery, d.status_code) for d in fakehub.deliveries("issues", "assigned")] == [
        (failed.id, False, None), (failed.id, True, 202)]
    assert scene.app.delivery(failed.id).status == "processed"
    assert task.status == "succeeded", task.status_reason
    assert task.delivery_id == failed.id
    [pr] = scene.pulls()
    assert f"Closes #{number}" in pr.body
    # And /metrics counts both redeliveries (issues.opened was lost too)
    metrics = scene.app.client.get("/metrics").text
    assert "draftsmith_recovery_redeliveries_total 2.0" in metrics
    assert "draftsmith_recovery_failed_again_total 0.0" in metrics


def _open_draft_as_the_app(fakehub, task_id: int, branch: str) -> str:
    """What an interrupted open_draft makes before it dies: a start commit, its branch, the draft PR."""
    api = fakehub.as_app(REPO)
    main = api.get(f"/repos/{REPO}/branches/main").json()["commit"]
    commit = api.post(f"/repos/{REPO}/git/commits", json={
        "message": "Start", "tree": main["commit"]["tree"]["sha"], "parents": [main["sha"]]}).json()["sha"]
    api.post(f"/repos/{REPO}/git/refs", json={"ref": f"refs/heads/{branch}", "sha": commit}).raise_for_status()
    api.post(f"/repos/{REPO}/pulls", json={"title": "Fix typo in README", "head": branch, "base": "main",
                                           "body": pr_marker(task_id), "draft": True}).raise_for_status()
    return commit


@pytest.mark.parametrize("left", ["nothing", "comment", "draft"])
def test_an_assignment_whose_worker_died_after_creating_its_task_is_handled_again_to_a_pull_request(
        fakehub, make_draftsmith, left):
    # Given an assignment GitHub recorded, whose first handling created the task and its run and then
    # died before queueing the run (serve killed a worker past its grace period), having left on GitHub
    # nothing, or the progress comment, or that and the draft PR, none of which it got to record
    fakehub.webhook_url = f"http://127.0.0.1:{free_port()}/api/github/webhooks"
    scene = Scene(fakehub, None)
    scene.repo(command_config("sed -i 's/tpyo/typo/' README.md && echo fixed the typo"))
    number = fakehub.open_issue(REPO, "Fix typo in README", "The README says tpyo.")
    fakehub.assign(REPO, number, scene.bot)
    [assigned] = fakehub.deliveries("issues", "assigned")
    scene.app = make_draftsmith(fakehub.env())
    fakehub.webhook_url = scene.app.webhook_url
    started = TaskService(scene.app.engine).create(
        installation_id=fakehub.installation_id(REPO), repo_full_name=REPO, issue_number=number,
        title="Fix typo in README", requester="alice", trigger="assignment", delivery_id=assigned.id,
        agent="command", base_branch="main", branch=f"draftsmith/{number}-fix-typo-in-readme")
    TaskService(scene.app.engine).update_run(started.run.id, queued_at=utcnow() - timedelta(minutes=2))
    if left in ("comment", "draft"):
        fakehub.as_app(REPO).post(f"/repos/{REPO}/issues/{number}/comments", json={
            "body": f"{progress_marker(started.task.id)}\n### Draftsmith: ⏳ Queued"}).raise_for_status()
    if left == "draft":
        head = _open_draft_as_the_app(fakehub, started.task.id, started.task.branch)
        TaskService(scene.app.engine).update(started.task.id, head_sha=head)

    # When the delivery is handled again (as the sweeper sends it once that worker is presumed dead)
    assert scene.app.post_webhook("issues", assigned.payload, delivery_id=assigned.id).status_code == 202
    [task] = scene.wait_settled()

    # Then the same task is acknowledged once and runs to a pull request, instead of showing "Queued"
    assert task.id == started.task.id and task.status == "succeeded", task.status_reason
    [progress] = scene.bot_comments(number)
    assert "Done" in progress.body
    [pr] = scene.pulls()
    assert f"Closes #{number}" in pr.body
    assert scene.check_run(task).conclusion == "success"


def test_an_assignment_whose_draft_github_refused_for_a_while_is_tried_again_to_a_pull_request(scene, fakehub):
    # Given GitHub answering 502 to opening pull requests for longer than the client retries
    scene.repo(command_config("sed -i 's/tpyo/typo/' README.md && echo fixed the typo"))
    number = fakehub.open_issue(REPO, "Fix typo in README", "The README says tpyo.")
    fakehub.fault(f"/repos/{REPO}/pulls", status=502, method="POST", count=4)

    # When alice assigns the bot
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    # Then the delivery is tried again once GitHub is back, and the same task runs to one pull request
    assert task.status == "succeeded", task.status_reason
    [progress] = scene.bot_comments(number)
    assert "Done" in progress.body
    [pr] = scene.pulls()
    assert f"Closes #{number}" in pr.body


def test_a_stranded_run_whose_intake_died_after_commenting_keeps_that_one_comment(fakehub, make_draftsmith):
    # Given a task whose intake posted the progress comment and died before recording it or queueing the run
    from app.deliveries.sweeper import recover_runs

    scene = Scene(fakehub, None)
    scene.repo(command_config("sed -i 's/tpyo/typo/' README.md && echo fixed the typo"))
    number = fakehub.open_issue(REPO, "Fix typo in README", "The README says tpyo.")
    scene.app = make_draftsmith(fakehub.env(), DRAFTSMITH_HEARTBEAT_TIMEOUT=20)
    fakehub.webhook_url = scene.app.webhook_url
    started = TaskService(scene.app.engine).create(
        installation_id=fakehub.installation_id(REPO), repo_full_name=REPO, issue_number=number,
        title="Fix typo in README", requester="alice", trigger="assignment", agent="command", base_branch="main",
        branch=f"draftsmith/issue-{number}-fix-typo-in-readme")
    TaskService(scene.app.engine).update_run(started.run.id, queued_at=utcnow() - timedelta(minutes=2))
    fakehub.as_app(REPO).post(f"/repos/{REPO}/issues/{number}/comments", json={
        "body": f"{progress_marker(started.task.id)}\n### Draftsmith: ⏳ Queued"}).raise_for_status()

    # When the sweeper sends its run again
    assert recover_runs(scene.app.runtime) == 1
    [task] = scene.wait_settled()

    # Then the task runs to its PR and keeps the one progress comment
    assert task.status == "succeeded", task.status_reason
    [progress] = scene.bot_comments(number)
    assert "Done" in progress.body
    assert len(scene.pulls()) == 1
