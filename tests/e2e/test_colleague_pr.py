"""Asked on a pull request a person opened: the bot commits on that PR's branch, or explains why it cannot."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.e2e.conftest import REPO, command_config, person_pushes

FIX = "sed -i 's/tpyo/typo/' README.md"
FILES = {"README.md": "# Demo\n\nA tpyo here.\n"}
THEIR_BODY = "Adds a changelog. Could someone fix the README typo on top?"


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def _their_pr(scene, fakehub, tmp_path, title: str = "Add a changelog") -> tuple[int, str]:
    """alice's PR from a branch of this repository with one commit of hers: its number and head."""
    scene.repo(command_config(FIX), files=FILES)
    theirs = person_pushes(fakehub.authenticated_clone_url(REPO), tmp_path, "alice/changelog", "CHANGELOG.md", "v1\n")
    return fakehub.open_pull(REPO, "alice/changelog", title, THEIR_BODY), theirs


def test_run_on_a_colleagues_pr_adds_one_commit_to_its_branch_and_leaves_the_pr_theirs(scene, fakehub, tmp_path):
    number, theirs = _their_pr(scene, fakehub, tmp_path)

    fakehub.comment(REPO, number, "/agent run fix the typo in the README")
    [task] = scene.wait_settled()

    assert task.status == "succeeded", task.status_reason
    assert (task.pr_number, task.branch) == (number, "alice/changelog")
    [pr] = scene.pulls()  # no second pull request
    head = scene.branch_head("alice/changelog")
    assert head == task.head_sha
    git_dir = fakehub.repo(REPO).git_dir
    assert _git("--git-dir", git_dir, "log", "-1", "--format=%P", head) == theirs  # one commit, on top
    assert _git("--git-dir", git_dir, "show", f"{head}:README.md") == "# Demo\n\nA typo here."
    assert _git("--git-dir", git_dir, "show", f"{head}:CHANGELOG.md") == "v1"
    # Their description, title and ready state are theirs; the bot reports in a comment and its check run.
    issue = fakehub.state.repos[REPO].issues[number]
    assert (issue.body, issue.title, issue.pull.draft) == (THEIR_BODY, "Add a changelog", False)
    assert any("Done" in c.body for c in scene.bot_comments(number))
    assert scene.check_run(task).conclusion == "success"


def test_new_pr_on_a_colleagues_pr_opens_a_separate_pull_request(scene, fakehub, tmp_path):
    number, theirs = _their_pr(scene, fakehub, tmp_path)

    fakehub.comment(REPO, number, "/agent run --new-pr fix the typo in the README")
    [task] = scene.wait_settled()

    assert task.status == "succeeded", task.status_reason
    assert task.pr_number != number and len(scene.pulls()) == 2
    assert scene.branch_head("alice/changelog") == theirs


def test_run_on_a_fork_pr_replies_once_and_changes_nothing(scene, fakehub, tmp_path):
    scene.repo(command_config(FIX), files=FILES)
    fork = fakehub.fork(REPO, "bob")
    fork_dir = fakehub.state.repos[fork].git_dir
    theirs = person_pushes(fork_dir, tmp_path, "patch-1", "CHANGELOG.md", "v1\n", author="bob")
    number = fakehub.open_pull(REPO, "bob:patch-1", "Add a changelog", THEIR_BODY, as_user="bob")
    before = len(fakehub.requests())

    fakehub.comment(REPO, number, "/agent run fix the typo in the README")
    scene.wait_for(lambda: scene.bot_comments(number), what="the bot's reply")
    scene.wait_settled()

    [reply] = scene.bot_comments(number)
    assert "lives in `bob/demo`" in reply.body and "--new-pr" in reply.body
    assert scene.tasks() == [] and len(scene.pulls()) == 1
    assert _git("--git-dir", fork_dir, "rev-parse", "patch-1") == theirs
    writes = [r for r in fakehub.requests()[before:] if r.method != "GET" and r.path.startswith("/repos/")
              and "/comments" not in r.path and "/reactions" not in r.path]
    assert writes == []


def test_assigning_the_bot_on_a_colleagues_pr_commits_there_and_unassigning_cancels(scene, fakehub, tmp_path):
    number, theirs = _their_pr(scene, fakehub, tmp_path, title="Fix the README typo too")

    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    assert task.status == "succeeded", task.status_reason
    assert (task.pr_number, task.trigger) == (number, "assignment")
    assert len(scene.pulls()) == 1
    head = scene.branch_head("alice/changelog")
    assert _git("--git-dir", fakehub.repo(REPO).git_dir, "log", "-1", "--format=%P", head) == theirs
    assert fakehub.deliveries("pull_request", "assigned") and not fakehub.deliveries("issues", "assigned")
