"""The draft PR opens before the agent starts, its check run follows the head, and work is pushed as it goes."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


from tests.e2e.conftest import REPO, Scene, command_config

# The agent waits (up to 20 s) for the test to say go: a file in the run's artifacts directory, which the
# sandbox sees. So the test looks at GitHub while the agent is surely still at work.
WAIT_FOR_GO = ('echo agent-started; go="$(dirname "$DRAFTSMITH_PROMPT_FILE")/go"; '
               'i=0; while [ ! -f "$go" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; ')


def _git(fakehub, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", fakehub.repo(REPO).git_dir, *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def _say_go(scene: Scene, run_id: int) -> None:
    (Path(scene.app.settings.effective_workspace_dir) / f"run-{run_id}" / "artifacts" / "go").write_text("")


def _running_run(scene: Scene):
    def started():
        tasks = scene.tasks()
        runs = scene.runs(tasks[0].id) if tasks else []
        return runs[-1] if runs and any(l.text == "agent-started" for l in scene.logs(runs[-1].id)) else None

    return scene.wait_for(started, 30, "the agent to start")


def test_the_draft_pull_request_and_its_check_run_appear_within_seconds_while_the_agent_works(scene, fakehub):
    scene.repo(command_config(WAIT_FOR_GO + "sed -i 's/tpyo/typo/' README.md"))
    main_head = scene.branch_head("main")
    number = fakehub.open_issue(REPO, "Fix typo in README", "The README says tpyo.")

    assigned = time.monotonic()
    fakehub.assign(REPO, number, scene.bot)
    [pr] = scene.wait_for(scene.pulls, 10, "the draft pull request")
    [task] = scene.tasks()
    check = scene.wait_for(lambda: scene.hub.state.check_runs.get(scene.tasks()[0].check_run_id), 10, "check run")
    visible_after = time.monotonic() - assigned

    # Then, before the agent has changed anything, a draft PR links the issue and shows the work in progress
    assert visible_after < 3, f"the draft PR and its check run took {visible_after:.1f} s"
    assert pr.pull.draft is True and pr.pull.base_ref == "main"
    assert f"Closes #{number}" in pr.body
    assert "Work in progress" in pr.body or "Queued" in pr.body
    assert "- [ ]" in pr.body, "the PR shows the checklist"
    assert "agent `command`" in pr.body and f"{scene.app.url}/tasks/{task.id}" in pr.body
    # on an empty start commit by the bot, Verified, with the requester as co-author
    start = scene.branch_head(pr.pull.head_ref)
    assert _git(fakehub, "log", "-1", "--format=%P", start) == main_head
    assert _git(fakehub, "rev-parse", f"{start}^{{tree}}") == _git(fakehub, "rev-parse", f"{main_head}^{{tree}}")
    assert start in fakehub.state.verified_commits
    assert "Co-authored-by: alice <alice@users.noreply.github.com>" in _git(fakehub, "log", "-1", "--format=%B", start)
    # and the check run is on the PR's head, in progress once the agent runs, not on main
    run = _running_run(scene)
    check = scene.check_run()
    assert check.head_sha == start and check.status == "in_progress"
    assert [a["identifier"] for a in check.actions] == ["cancel"]
    [progress] = scene.bot_comments(number)
    assert f"#{pr.number}" in progress.body
    assert [t.status for t in scene.tasks()] == ["running"], "all of this while the agent still works"

    # When the agent finishes, the check run on the final head is green and none of ours is on main
    _say_go(scene, run.id)
    [task] = scene.wait_settled()
    assert task.status == "succeeded", task.status_reason
    check = scene.check_run()
    assert check.head_sha == scene.branch_head(task.branch) != start
    assert (check.status, check.conclusion) == ("completed", "success")
    assert [c for c in scene.check_runs() if c.head_sha == scene.branch_head("main")] == []
    [pr] = scene.pulls()
    assert pr.pull.draft is False and "`README.md`" in pr.body and "Done" in pr.body


def test_work_is_checkpointed_while_the_agent_runs_and_kept_when_it_times_out(make_scene, fakehub):
    scene = make_scene(DRAFTSMITH_RUN_TIME_LIMIT="6")
    scene.repo(command_config("echo first draft > NOTES.md; echo agent-started; sleep 30", checkpoint_seconds=2))
    number = fakehub.open_issue(REPO, "Write notes")
    fakehub.assign(REPO, number, scene.bot)

    # While the agent still runs, its file is pushed to the draft's branch as a Verified checkpoint commit
    _running_run(scene)
    [task] = scene.tasks()
    checkpoint = scene.wait_for(
        lambda: (head := scene.branch_head(task.branch)) and "NOTES.md" in _git(fakehub, "ls-tree", "--name-only", head)
        and head, 10, "a checkpoint commit")
    assert scene.tasks()[0].status == "running"
    assert _git(fakehub, "log", "-1", "--format=%s", checkpoint) == "Checkpoint of 1 file while the agent works"
    assert checkpoint in fakehub.state.verified_commits
    assert scene.wait_for(lambda: fakehub.state.check_runs[scene.tasks()[0].check_run_id].head_sha == checkpoint,
                          5, "the check run to follow the head")
    assert "NOTES.md" in scene.wait_for(lambda: "NOTES.md" in scene.pulls()[0].body and scene.pulls()[0].body, 5)

    # When the time limit strikes, the work stays on the branch and the PR stays a draft saying why
    [task] = scene.wait_settled(timeout=30)
    assert task.status == "timed_out", task.status_reason
    assert _git(fakehub, "show", f"{task.branch}:NOTES.md") == "first draft"
    [pr] = scene.pulls()
    assert pr.pull.draft is True and pr.state == "open"
    assert "stays a draft" in pr.body and "Timed out" in pr.body
    check = scene.check_run()
    assert (check.status, check.conclusion) == ("completed", "timed_out")
    assert [a["identifier"] for a in check.actions] == ["retry"]

    # GitHub's Re-run on a check run it left on an older commit still retries the task
    [first, *_] = sorted((c for c in scene.check_runs() if c.external_id == str(task.id)), key=lambda c: c.id)
    assert first.id != check.id
    fakehub.rerequest_check_run(first.id)
    scene.wait_for(lambda: len(scene.runs(task.id)) == 2, 10, "a second attempt")
    scene.wait_settled(timeout=30)


def test_an_agents_own_commit_is_pushed_soon_and_cancelling_keeps_the_work(scene, fakehub):
    # No timer: only the agent's commit makes a checkpoint.
    scene.repo(command_config("echo hello > a.txt && git add a.txt && git commit -qm 'agent: add a.txt' && "
                              + WAIT_FOR_GO + "echo never > b.txt", checkpoint_seconds=0))
    number = fakehub.open_issue(REPO, "Add a.txt")
    fakehub.assign(REPO, number, scene.bot)
    _running_run(scene)
    [task] = scene.tasks()
    head = scene.wait_for(
        lambda: (h := scene.branch_head(task.branch)) and "a.txt" in _git(fakehub, "ls-tree", "--name-only", h) and h,
        15, "the agent's commit on the branch")
    assert "b.txt" not in _git(fakehub, "ls-tree", "--name-only", head)

    fakehub.comment(REPO, number, "/agent cancel")
    [task] = scene.wait_settled(timeout=30)
    assert task.status == "cancelled"
    assert _git(fakehub, "show", f"{task.branch}:a.txt") == "hello"
    [pr] = scene.pulls()
    assert pr.pull.draft is True and "Cancelled" in pr.body
    assert scene.check_run().conclusion == "cancelled"


def test_squash_folds_the_checkpoints_into_one_commit_on_the_base(scene, fakehub):
    scene.repo(command_config("echo one > a.txt; sleep 2.5; echo two > b.txt", checkpoint_seconds=1, squash=True))
    main_head = scene.branch_head("main")
    number = fakehub.open_issue(REPO, "Add two files")
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    assert task.status == "succeeded", task.status_reason
    head = scene.branch_head(task.branch)
    assert _git(fakehub, "log", "-1", "--format=%P", head) == main_head, "one commit, straight on the base"
    assert _git(fakehub, "diff", "--name-only", main_head, head).split() == ["a.txt", "b.txt"]
    assert head in fakehub.state.verified_commits
    assert scene.check_run().conclusion == "success"
    log = [line.text for line in scene.logs(scene.runs(task.id)[0].id)]
    assert any(text.startswith("checkpoint ") for text in log), "a checkpoint was pushed before the squash"


def test_no_changes_close_the_draft_delete_its_branch_and_leave_a_neutral_check(scene, fakehub):
    scene.repo(command_config("echo the README looks fine to me"))
    number = fakehub.open_issue(REPO, "Fix typo in README")
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    assert task.status == "succeeded" and task.pr_number is None
    [pr] = scene.pulls()
    assert pr.state == "closed" and pr.pull.draft is True
    [said] = [c for c in scene.comments(pr.number) if c.user.login == scene.bot]
    assert "without changing any files" in said.body and "the README looks fine to me" in said.body
    assert _git(fakehub, "branch", "--format=%(refname:short)") == "main", "the branch is deleted"
    [check] = [c for c in scene.check_runs() if c.id == task.check_run_id]
    assert (check.status, check.conclusion) == ("completed", "neutral")
    [progress] = scene.bot_comments(number)
    assert "without changing any files" in progress.body

    # A retry opens a fresh draft (the closed one's branch is gone) and moves the check run onto it
    fakehub.comment(REPO, number, "/agent retry")
    [task] = scene.wait_settled()
    first, second = scene.pulls()
    assert second.state == "closed" and second.number != first.number
    assert scene.check_run(task).conclusion == "neutral"


def test_a_missing_base_branch_fails_the_task_at_once_and_names_it(scene, fakehub):
    scene.repo(command_config("echo hi > hi.txt"))
    number = fakehub.open_issue(REPO, "Add hi.txt")
    fakehub.comment(REPO, number, "/agent run --base no-such-branch")
    [task] = scene.wait_settled()

    assert task.status == "failed" and "`no-such-branch` does not exist" in task.status_reason
    [progress] = scene.bot_comments(number)
    assert "no-such-branch" in progress.body and "--base" in progress.body
    assert scene.pulls() == [] and scene.check_runs() == []
    assert scene.runs(task.id)[0].started_at is None, "no worker time is spent on it"
