"""What lands on the PR's branch: the base or the branch moving meanwhile, tests, setup, follow-ups."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.e2e.conftest import REPO, command_config

FIX = "sed -i 's/tpyo/typo/' README.md"
# The agent waits for the test to say go (a file in the run's artifacts directory, which the sandbox sees),
# so the test can push to a branch while the agent is surely at work.
WAIT_FOR_GO = ('echo agent-started; go="$(dirname "$DRAFTSMITH_PROMPT_FILE")/go"; '
               'i=0; while [ ! -f "$go" ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done; ')


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def _show(fakehub, ref: str, path: str) -> str:
    return _git("--git-dir", fakehub.repo(REPO).git_dir, "show", f"{ref}:{path}")


def _parents(fakehub, sha: str) -> list[str]:
    return _git("--git-dir", fakehub.repo(REPO).git_dir, "log", "-1", "--format=%P", sha).split()


def _push(fakehub, tmp_path: Path, branch: str, path: str, content: str) -> str:
    """Someone pushes a commit to `branch` over git, as a person would; returns the new head."""
    clone = tmp_path / f"someone-{branch.replace('/', '-')}"
    _git("clone", "-q", "--branch", branch, fakehub.authenticated_clone_url(REPO), str(clone))
    (clone / path).write_text(content)
    _git("add", path, cwd=clone)
    _git("-c", "user.name=bob", "-c", "user.email=bob@example.com", "commit", "-qm", f"edit {path}", cwd=clone)
    _git("push", "-q", "origin", f"HEAD:{branch}", cwd=clone)
    return _git("rev-parse", "HEAD", cwd=clone)


def _push_while_the_agent_works(scene, fakehub, tmp_path, path: str, content: str, branch: str | None = None) -> str:
    """Push to `branch` (the task's PR branch by default) while the agent waits for go; returns the new head."""
    def started():
        tasks = scene.tasks()
        runs = scene.runs(tasks[0].id) if tasks else []
        return runs[0] if runs and any(l.text == "agent-started" for l in scene.logs(runs[0].id)) else None

    run = scene.wait_for(started, 30, "the agent to start")
    new_head = _push(fakehub, tmp_path, branch or scene.tasks()[0].branch, path, content)
    go = Path(scene.app.settings.effective_workspace_dir) / f"run-{run.id}" / "artifacts" / "go"
    go.write_text("")
    return new_head


def test_the_base_moving_while_the_agent_works_leaves_the_pull_request_branch_alone(scene, fakehub, tmp_path):
    scene.repo(command_config(WAIT_FOR_GO + FIX))
    old_main = _git("--git-dir", fakehub.repo(REPO).git_dir, "rev-parse", "main")
    number = fakehub.open_issue(REPO, "Fix typo in README")
    fakehub.assign(REPO, number, scene.bot)
    _push_while_the_agent_works(scene, fakehub, tmp_path, "NOTES.md", "notes\n", branch="main")
    [task] = scene.wait_settled()

    # The PR's branch grows from where it started; merging the moved base is GitHub's job, not a force-push
    assert task.status == "succeeded", task.status_reason
    [start] = _parents(fakehub, task.head_sha)
    assert _parents(fakehub, start) == [old_main]
    assert _show(fakehub, task.branch, "README.md") == "# Demo\n\nA typo here."
    assert "NOTES.md" not in _git("--git-dir", fakehub.repo(REPO).git_dir, "ls-tree", "--name-only", task.branch)
    [pr] = scene.pulls()
    assert pr.pull.draft is False


def test_a_person_pushing_to_the_pull_request_branch_gets_the_agents_commit_on_top(scene, fakehub, tmp_path):
    scene.repo(command_config(WAIT_FOR_GO + FIX))
    number = fakehub.open_issue(REPO, "Fix typo in README")
    fakehub.assign(REPO, number, scene.bot)
    new_head = _push_while_the_agent_works(scene, fakehub, tmp_path, "NOTES.md", "notes\n")
    [task] = scene.wait_settled()

    assert task.status == "succeeded", task.status_reason
    assert _parents(fakehub, task.head_sha) == [new_head], "on top of the person's commit, never force-pushed"
    assert _show(fakehub, task.branch, "NOTES.md") == "notes"
    assert _show(fakehub, task.branch, "README.md") == "# Demo\n\nA typo here."
    diff = _git("--git-dir", fakehub.repo(REPO).git_dir, "diff", "--name-only", new_head, task.head_sha)
    assert diff == "README.md", "the agent's commit holds only the agent's change"
    assert scene.check_run().head_sha == task.head_sha


def test_a_person_pushing_a_conflicting_change_to_the_branch_needs_attention_with_instructions(scene, fakehub,
                                                                                               tmp_path):
    scene.repo(command_config(WAIT_FOR_GO + FIX))
    number = fakehub.open_issue(REPO, "Fix typo in README")
    fakehub.assign(REPO, number, scene.bot)
    new_head = _push_while_the_agent_works(scene, fakehub, tmp_path, "README.md", "# Demo\n\nA tpyo there.\n")
    [task] = scene.wait_settled()

    assert task.status == "needs_attention"
    assert "conflict" in task.status_reason and "/agent retry" in task.status_reason
    assert _git("--git-dir", fakehub.repo(REPO).git_dir, "rev-parse", task.branch) == new_head, "their commit stays"
    check = scene.check_run()
    assert (check.status, check.conclusion) == ("completed", "action_required")
    [progress] = scene.bot_comments(number)
    assert "Needs attention" in progress.body and "/agent retry" in progress.body
    [pr] = scene.pulls()
    assert pr.pull.draft is True and "stays a draft" in pr.body


def test_failing_tests_leave_the_pull_request_a_draft_saying_why(scene, fakehub):
    scene.repo(command_config(FIX, test="grep -q 'no such words' README.md"))
    number = fakehub.open_issue(REPO, "Fix typo in README")
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    [pr] = scene.pulls()
    assert pr.pull.draft is True
    assert "stays a draft" in pr.body and "tests failed" in pr.body
    assert "**Tests:** failed" in pr.body
    check = scene.check_run()
    assert (check.status, check.conclusion) == ("completed", "failure")
    assert "Tests: failed" in check.output["text"]
    [progress] = scene.bot_comments(number)
    assert "tests failed" in progress.body
    assert pr.pull.requested_reviewers == []


def test_setup_runs_before_the_agent_and_passing_tests_make_the_pull_request_ready(scene, fakehub):
    # The agent only succeeds if setup ran first; the test only passes if the agent's change is there.
    scene.repo(command_config(f"test -f .setup-done && rm .setup-done && {FIX}",
                              setup=["echo ok > .setup-done"], test="grep -q typo README.md"))
    number = fakehub.open_issue(REPO, "Fix typo in README")
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    assert task.status == "succeeded", task.status_reason
    [pr] = scene.pulls()
    assert pr.pull.draft is False and "**Tests:** passed" in pr.body
    check = scene.check_run()
    assert check.conclusion == "success" and "Tests: passed" in check.output["text"]
    [run] = scene.runs(task.id)
    texts = [line.text for line in scene.logs(run.id)]
    assert texts.index("setup: echo ok > .setup-done") < texts.index("tests: grep -q typo README.md")


def test_a_follow_up_on_the_bots_pull_request_commits_on_top_of_its_branch(scene, fakehub):
    scene.repo(command_config(f"{FIX} && echo more >> README.md"))
    number = fakehub.open_issue(REPO, "Fix typo in README")
    fakehub.assign(REPO, number, scene.bot)
    [first] = scene.wait_settled()
    [pr] = scene.pulls()

    fakehub.comment(REPO, pr.number, "/agent run add one more line")
    first, follow_up = scene.wait_settled()

    assert follow_up.status == "succeeded", follow_up.status_reason
    assert (follow_up.pr_number, follow_up.branch) == (pr.number, first.branch)
    assert len(scene.pulls()) == 1
    assert _parents(fakehub, follow_up.head_sha) == [first.head_sha]
    assert _git("--git-dir", fakehub.repo(REPO).git_dir, "rev-parse", first.branch) == follow_up.head_sha
    assert _show(fakehub, first.branch, "README.md") == "# Demo\n\nA typo here.\nmore\nmore"
    assert follow_up.head_sha in fakehub.state.verified_commits
