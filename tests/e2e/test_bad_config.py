"""A repository config Draftsmith cannot use stops the task with one reply; it never runs another agent."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from app.models import Delivery

from tests.e2e.conftest import REPO, command_config


@pytest.mark.parametrize(("config", "problem"), [
    ("agent: command\n", "needs a `command:` line"),
    ("agent: command\ncommand: 'echo hi > hi.txt'\n# " + "x" * 70_000 + "\n", "over 64 KB"),
    ("agent: [oops\n", "invalid YAML"),
    ("agent: command\ncommand: 'echo hi > hi.txt'\nrequired_permission: everyone\n", "required_permission"),
], ids=["command-agent-without-command", "over-64-kb", "invalid-yaml", "bad-required-permission"])
def test_a_config_that_cannot_be_used_stops_the_task_with_one_reply(scene, fakehub, config, problem):
    scene.repo(config)
    number = fakehub.open_issue(REPO, "Add hi.txt")
    fakehub.assign(REPO, number, scene.bot)
    scene.wait_settled()

    assert scene.tasks() == [], "no task starts, so no default agent spends anyone's money"
    [reply] = scene.bot_comments(number)
    assert "did not start" in reply.body and problem in reply.body
    assert scene.pulls() == [] and scene.check_runs() == []


def test_a_problem_in_a_key_with_a_safe_default_still_runs_the_task_and_says_so(scene, fakehub):
    scene.repo("agent: command\ncommand: 'echo hi > hi.txt'\nmax_runtime_minutes: forever\n")
    number = fakehub.open_issue(REPO, "Add hi.txt")
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    assert task.status == "succeeded", task.status_reason
    warning = next(c for c in scene.bot_comments(number) if "found problems" in c.body)
    assert "max_runtime_minutes" in warning.body


def test_a_read_only_person_learns_nothing_about_a_broken_config(scene, fakehub):
    scene.repo("agent: command\n")
    number = fakehub.open_issue(REPO, "Add hi.txt")
    fakehub.comment(REPO, number, "/agent run", as_user="rita")
    scene.wait_settled()

    assert scene.tasks() == []
    [reply] = scene.bot_comments(number)
    assert "did not start" not in reply.body and "only people with **write** access" in reply.body


def test_an_agent_that_edits_a_workflow_is_told_why_it_cannot_be_pushed(scene, fakehub):
    scene.repo(command_config("mkdir -p .github/workflows && echo 'on: push' > .github/workflows/ci.yml && "
                              "echo fixed > fix.txt"), files={".github/workflows/keep.yml": "on: pull_request\n"})
    number = fakehub.open_issue(REPO, "Fix CI")
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    assert task.status == "needs_attention"
    assert "`.github/workflows/ci.yml`" in task.status_reason and "`workflows` permission" in task.status_reason
    assert "no free branch name" not in task.status_reason
    [progress] = scene.bot_comments(number)
    assert "`workflows` permission" in progress.body
    [pr] = scene.pulls()
    assert pr.pull.draft is True and "stays a draft" in pr.body
    assert scene.check_run().conclusion == "action_required"


def test_github_failing_while_the_draft_is_opened_ends_the_task_visibly(scene, fakehub):
    scene.repo(command_config("echo hi > hi.txt"))
    number = fakehub.open_issue(REPO, "Add hi.txt")
    # More 502s, on the call that makes the draft's start commit, than the client's retries within each of
    # the delivery's attempts (which carry the task on while GitHub is briefly away)
    fakehub.fault("/repos/octo/demo/git/commits", status=502, method="POST", count=60)
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    assert task.status == "failed" and "GitHub answered 502" in task.status_reason
    assert "/agent retry" in task.status_reason
    [progress] = scene.bot_comments(number)
    assert "Failed" in progress.body and "GitHub answered 502" in progress.body
    assert scene.runs(task.id)[0].started_at is None, "nothing ran"

    # And once GitHub is back, a retry goes through
    fakehub.state.faults.clear()
    fakehub.comment(REPO, number, "/agent retry")
    [task] = scene.wait_settled()
    assert task.status == "succeeded", task.status_reason
    assert len(scene.pulls()) == 1


def test_a_delivery_whose_handler_met_a_github_outage_is_retried_and_acts_once(scene, fakehub):
    scene.repo(command_config("echo hi > hi.txt"))
    number = fakehub.open_issue(REPO, "Add hi.txt")
    # More 502s than one handler attempt survives (the client retries 3 times), fewer than two
    fakehub.fault("/repos/octo/demo/collaborators/alice/permission", status=502, count=6)
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    assert task.status == "succeeded", task.status_reason
    assert len(scene.bot_comments(number)) == 1 and len(scene.pulls()) == 1
    assert [r.content for r in fakehub.repo(REPO).issues[number].reactions] == ["eyes"]
    with Session(scene.app.engine) as session:
        [status] = session.exec(select(Delivery.status).where(Delivery.event == "issues",
                                                              Delivery.action == "assigned")).all()
    assert status == "processed"
