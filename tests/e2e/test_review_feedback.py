"""Review feedback on the bot's own PR starts follow-ups on the same branch; check run buttons respect permissions."""

from __future__ import annotations

import subprocess

from app.github import render
from tests.e2e.conftest import REPO, command_config

# Appends the instruction the agent got (from the prompt file), so each follow-up really changes something.
AGENT = command_config("tail -c 300 {prompt_file} >> NOTES.md && echo appended the instruction")


def _opened_pr(scene, fakehub):
    """Given a task of alice's that opened a PR: (issue number, task, PR)."""
    scene.repo(AGENT)
    number = fakehub.open_issue(REPO, "Write notes", "Start a NOTES.md file.")
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()
    assert task.status == "succeeded", task.status_reason
    [pr] = scene.pulls()
    return number, task, pr


def _history(fakehub, ref: str) -> list[str]:
    return subprocess.run(["git", "--git-dir", fakehub.repo(REPO).git_dir, "rev-list", ref], capture_output=True,
                          text=True, check=True).stdout.split()


def test_a_review_with_a_body_from_the_requester_adds_a_commit_to_the_same_pr(scene, fakehub):
    _, first, pr = _opened_pr(scene, fakehub)

    fakehub.review(REPO, pr.number, "Please mention the release date too.")
    tasks = scene.wait_settled()

    follow = tasks[-1]
    assert len(tasks) == 2 and follow.trigger == "review" and follow.status == "succeeded", follow.status_reason
    assert (follow.pr_number, follow.branch) == (pr.number, first.branch)
    assert "Please mention the release date too." in follow.instruction
    assert len(scene.pulls()) == 1
    history = _history(fakehub, first.branch)
    assert history[0] == follow.head_sha and history[1] == first.head_sha  # one new commit on top
    review = [r for r in fakehub.state.reviews.values() if r.pull_number == pr.number][-1]
    assert review.body.startswith("Please mention")


def test_changes_requested_with_line_comments_starts_one_follow_up_with_the_comments(scene, fakehub):
    _, first, pr = _opened_pr(scene, fakehub)

    fakehub.review(REPO, pr.number, "", event="REQUEST_CHANGES",
                   comments=[{"path": "NOTES.md", "line": 1, "body": "Say who the notes are for."}])
    tasks = scene.wait_settled()

    follow = tasks[-1]
    assert len(tasks) == 2, [(t.trigger, t.status, t.instruction) for t in tasks]
    assert follow.status == "succeeded" and follow.branch == first.branch
    assert "Say who the notes are for." in follow.instruction
    replies = [c for c in scene.bot_comments(pr.number) if render.progress_marker(follow.id) not in c.body]
    assert replies == [], "one review is one request: no 'already working' replies for its comments"


def test_a_review_comment_mentioning_the_bot_starts_a_follow_up_and_gets_eyes(scene, fakehub):
    _, first, pr = _opened_pr(scene, fakehub)
    fakehub.add_user("bob", permissions={REPO: "write"})

    head = first.head_sha
    resp = fakehub.as_user("bob").post(f"/repos/{REPO}/pulls/{pr.number}/comments", json={
        "body": f"@{fakehub.app_slug} rename this heading", "path": "NOTES.md", "line": 1, "commit_id": head})
    assert resp.status_code == 201
    comment_id = resp.json()["id"]
    tasks = scene.wait_settled()

    follow = tasks[-1]
    assert len(tasks) == 2 and follow.requester == "bob" and follow.status == "succeeded"
    assert "rename this heading" in follow.instruction and "NOTES.md" in follow.instruction
    assert [r.content for r in fakehub.state.review_comments[comment_id].reactions] == ["eyes"]


def test_a_review_by_someone_else_without_a_mention_does_nothing(scene, fakehub):
    _, _, pr = _opened_pr(scene, fakehub)
    fakehub.add_user("bob", permissions={REPO: "write"})

    fakehub.review(REPO, pr.number, "Looks fine to me, though I would reword it.", as_user="bob")
    fakehub.review(REPO, pr.number, "", event="COMMENT", as_user="bob",
                   comments=[{"path": "NOTES.md", "line": 1, "body": "nit: wording"}])
    tasks = scene.wait_settled()

    assert len(tasks) == 1
    assert all(render.progress_marker(tasks[0].id) in c.body for c in scene.bot_comments(pr.number))


def test_a_read_only_user_clicking_a_check_run_button_is_refused(scene, fakehub, draftsmith):
    scene.repo(command_config("exit 3"))
    number = fakehub.open_issue(REPO, "Break things", "")
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()
    assert task.status == "failed"
    check = scene.check_run()
    assert [a["identifier"] for a in check.actions] == ["retry"]

    # rita (read) clicks Retry, then GitHub's Re-run: one polite refusal each, no new attempt
    fakehub.request_check_run_action(check.id, "retry", as_user="rita")
    fakehub.rerequest_check_run(check.id, as_user="rita")
    scene.wait_settled()
    assert len(scene.runs(task.id)) == 1
    refusals = [c for c in scene.bot_comments(number) if c.body == render.permission_refusal("rita", "write")]
    assert len(refusals) == 2

    # alice (write) clicks Retry: a second attempt runs
    fakehub.request_check_run_action(check.id, "retry")
    scene.wait_settled()
    assert len(scene.runs(task.id)) == 2


def test_the_check_run_offers_cancel_while_the_task_is_in_progress(scene, fakehub, draftsmith):
    scene.repo(command_config("sleep 30"))
    number = fakehub.open_issue(REPO, "Slow", "")
    fakehub.assign(REPO, number, scene.bot)
    check = scene.wait_for(lambda: next((c for c in scene.check_runs() if c.status == "in_progress"), None),
                           what="an in-progress check run")
    assert [a["identifier"] for a in check.actions] == ["cancel"]

    fakehub.request_check_run_action(check.id, "cancel", as_user="rita")
    draftsmith.join_deliveries()
    assert scene.tasks()[0].status == "running"

    fakehub.request_check_run_action(check.id, "cancel")
    [task] = scene.wait_settled()
    assert task.status == "cancelled"


def test_status_answers_with_the_task_state(scene, fakehub):
    number, task, pr = _opened_pr(scene, fakehub)
    fakehub.comment(REPO, number, "/agent status")
    scene.wait_settled()
    [reply] = [c for c in scene.bot_comments(number) if render.progress_marker(task.id) not in c.body]
    headline = reply.body.splitlines()[0]
    assert headline.startswith("**Draftsmith task") and f"#{task.id}" in headline and "Done" in headline
    assert f"pull request #{pr.number}" in reply.body
