"""The repository's own CI fails on the bot's PR: the bot reads the failure and fixes it, a bounded number of times."""

from __future__ import annotations

import subprocess

from tests.e2e.conftest import REPO, command_config, person_pushes

FAILURE = "test_parse FAILED: expected 3 got 2"
# The first run writes a bug; a CI fix run (whose prompt quotes the failing job's log) fixes it.
AGENT = (f"if grep '{FAILURE}' \"$DRAFTSMITH_PROMPT_FILE\"; then sed -i 's/return 2/return 3/' parse.py; "
         "else printf 'def parse():\\n    return 2\\n' > parse.py; fi")
# Every run changes something, so every fix pushes a new head for CI to fail on.
STUBBORN = "date +%s%N >> attempts.txt"
LOG = "Run pytest\n============ FAILURES ============\n" + FAILURE + "\n1 failed, 4 passed in 0.3s\n"


def _fail(fakehub, task) -> None:
    fakehub.run_ci(REPO, task.head_sha, [
        {"name": "test", "conclusion": "failure", "log": LOG, "title": "1 test failed"},
        {"name": "lint", "conclusion": "success", "log": "ok"},
    ], head_branch=task.branch)


def _pass(fakehub, task) -> None:
    fakehub.run_ci(REPO, task.head_sha, [{"name": "test", "conclusion": "success", "log": "5 passed"}],
                   head_branch=task.branch)


def _opened(scene, fakehub, config: str):
    scene.repo(config)
    number = fakehub.open_issue(REPO, "Add a parser")
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()
    assert task.status == "succeeded", task.status_reason
    return task


def test_failing_ci_on_the_bots_pr_is_fixed_on_the_same_branch_and_the_pr_is_ready_when_green(scene, fakehub):
    first = _opened(scene, fakehub, command_config(AGENT))

    _fail(fakehub, first)
    first, fix = scene.wait_settled()

    assert (fix.trigger, fix.status, fix.pr_number, fix.branch) == ("ci", "succeeded", first.pr_number, first.branch)
    assert fix.requester == first.requester
    [run] = scene.runs(fix.id)
    assert any(FAILURE in line.text for line in scene.logs(run.id)), "the prompt holds the failing job's log"
    git_dir = fakehub.repo(REPO).git_dir
    assert subprocess.run(["git", "--git-dir", git_dir, "log", "-1", "--format=%P", fix.head_sha],
                          capture_output=True, text=True, check=True).stdout.strip() == first.head_sha
    assert "return 3" in subprocess.run(["git", "--git-dir", git_dir, "show", f"{fix.head_sha}:parse.py"],
                                        capture_output=True, text=True, check=True).stdout
    progress = [c.body for c in scene.bot_comments(first.pr_number)]
    assert any("CI failed" in body and "`test`" in body and "Attempt 1 of 2" in body for body in progress)
    assert len(scene.pulls()) == 1

    _pass(fakehub, fix)
    scene.wait_for(lambda: any("CI passes" in c.body for c in scene.bot_comments(first.pr_number)),
                   what="the CI-fixed comment")
    [pr] = scene.pulls()
    assert pr.pull.draft is False
    assert len(scene.tasks()) == 2


def test_ci_failing_every_time_gets_max_attempts_fixes_then_one_hand_over(scene, fakehub):
    latest = _opened(scene, fakehub, command_config(STUBBORN))

    for attempt in (1, 2):
        _fail(fakehub, latest)
        tasks = scene.wait_for(lambda: len(scene.tasks()) == attempt + 1 and scene.wait_settled(),
                               what=f"fix attempt {attempt}")
        latest = tasks[-1]
        assert (latest.trigger, latest.status) == ("ci", "succeeded")
    _fail(fakehub, latest)
    scene.wait_for(lambda: any("still failing" in c.body for c in scene.bot_comments(latest.pr_number)),
                   what="the hand-over")
    _fail(fakehub, latest)  # another suite on the same head: no second note, no third fix
    scene.wait_settled()

    assert len(scene.tasks()) == 3
    handovers = [c.body for c in scene.bot_comments(latest.pr_number) if "still failing" in c.body]
    assert len(handovers) == 1 and "after 2 fix attempts" in handovers[0] and "[test](" in handovers[0]
    assert "lint" not in handovers[0]


def test_a_failed_check_on_a_pr_the_bot_did_not_open_triggers_nothing(scene, fakehub, tmp_path):
    scene.repo(command_config(AGENT))
    head = person_pushes(fakehub.authenticated_clone_url(REPO), tmp_path, "alice/parser", "parse.py",
                         "def parse():\n    return 2\n")
    number = fakehub.open_pull(REPO, "alice/parser", "A parser")

    fakehub.run_ci(REPO, head, [{"name": "test", "conclusion": "failure", "log": LOG}], head_branch="alice/parser")
    scene.wait_settled()

    assert scene.tasks() == [] and scene.bot_comments(number) == []


def test_a_person_pushing_to_the_branch_stops_the_loop(scene, fakehub, tmp_path):
    first = _opened(scene, fakehub, command_config(AGENT))
    head = person_pushes(fakehub.authenticated_clone_url(REPO), tmp_path, first.branch, "NOTES.md", "mine\n",
                         author="bob", new_branch=False)

    fakehub.run_ci(REPO, head, [{"name": "test", "conclusion": "failure", "log": LOG}], head_branch=first.branch)
    scene.wait_settled()

    assert len(scene.tasks()) == 1
    assert not any("CI" in c.body and "still failing" in c.body for c in scene.bot_comments(first.pr_number))
