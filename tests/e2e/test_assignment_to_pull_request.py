"""Assigning the bot on an issue: from the webhook to a Verified commit and a ready pull request."""

from __future__ import annotations

import subprocess

from tests.e2e.conftest import REPO, command_config


def _git_show(fakehub, ref: str, path: str) -> str:
    repo = fakehub.repo(REPO)
    return subprocess.run(["git", "--git-dir", repo.git_dir, "show", f"{ref}:{path}"], capture_output=True,
                          text=True, check=True).stdout


def test_assigning_the_bot_turns_the_issue_into_a_ready_pull_request(scene, fakehub):
    # Given a repository whose config runs a shell line as the agent
    scene.repo(command_config("sed -i 's/tpyo/typo/' README.md && echo fixed the typo"))
    number = fakehub.open_issue(REPO, "Fix typo in README", "The README says tpyo.")

    # When alice assigns the bot
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    # Then the task succeeded and GitHub holds a branch, a Verified bot commit and a ready PR
    assert task.status == "succeeded", task.status_reason
    assert task.branch == f"draftsmith/issue-{number}-fix-typo-in-readme"
    [pr] = scene.pulls()
    assert pr.pull.head_ref == task.branch and pr.pull.base_ref == "main"
    assert pr.pull.draft is False, "a successful run is marked ready for review"
    assert f"Closes #{number}" in pr.body
    assert [u.login for u in pr.pull.requested_reviewers] == ["alice"]
    assert _git_show(fakehub, task.branch, "README.md") == "# Demo\n\nA typo here.\n"
    assert task.head_sha in fakehub.state.verified_commits
    message = subprocess.run(["git", "--git-dir", fakehub.repo(REPO).git_dir, "log", "-1", "--format=%an%n%B",
                              task.head_sha], capture_output=True, text=True, check=True).stdout
    assert message.startswith(scene.bot)
    assert "Co-authored-by: alice <alice@users.noreply.github.com>" in message
    # The commit links back to the run that made it, as the check run does
    [log_link] = [line for line in message.splitlines() if line.startswith("Session log: ")]
    assert log_link.removeprefix("Session log: ").startswith(f"{scene.app.url}/tasks/{task.id}")
    assert scene.app.client.get(log_link.removeprefix("Session log: ").removeprefix(scene.app.url)).status_code == 200

    # And the acknowledgements and final reports are visible
    issue = fakehub.repo(REPO).issues[number]
    assert [r.content for r in issue.reactions if r.user.login == scene.bot] == ["eyes"]
    [progress] = scene.bot_comments(number)
    assert "Done" in progress.body and f"#{pr.number}" in progress.body
    check = scene.check_run()
    assert (check.name, check.status, check.conclusion) == ("Draftsmith", "completed", "success")

    # And the run's log holds the agent's output in order
    [run] = scene.runs(task.id)
    assert any(line.text == "fixed the typo" for line in scene.logs(run.id))
