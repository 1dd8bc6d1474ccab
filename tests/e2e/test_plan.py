"""`/agent plan` posts a plan without touching the code; a later `/agent run` is given that plan."""

from __future__ import annotations

from tests.e2e.conftest import REPO, command_config

# In plan mode the workspace is read-only: the write fails, and the command prints its plan instead.
# In run mode it applies the fix and records, in the README, whether its prompt carried the plan.
AGENT = (
    'if [ "$DRAFTSMITH_PLAN_MODE" = 1 ]; then '
    "(echo tampered >> README.md) 2>/dev/null && echo WROTE-IN-PLAN-MODE; "
    "echo '1. Replace tpyo with typo in README.md'; "
    "else grep -q 'Replace tpyo with typo' \"$DRAFTSMITH_PROMPT_FILE\" && sed -i 's/tpyo/typo/' README.md; fi"
)


def test_a_plan_is_posted_without_changes_and_the_next_run_follows_it(scene, fakehub):
    scene.repo(command_config(AGENT))
    number = fakehub.open_issue(REPO, "Fix typo in README", "The README says tpyo.")

    fakehub.comment(REPO, number, "/agent plan")
    [plan_task] = scene.wait_settled()
    assert plan_task.mode == "plan" and plan_task.status == "succeeded", plan_task.status_reason
    [plan_comment] = [c for c in scene.bot_comments(number) if "proposed plan" in c.body]
    assert "1. Replace tpyo with typo in README.md" in plan_comment.body
    assert "WROTE-IN-PLAN-MODE" not in plan_comment.body, "plan mode must not be able to edit the workspace"
    # A plan on an issue opens no PR, so it has no commit to put a check run on: the comments say it all
    assert scene.pulls() == [] and scene.check_runs() == []

    fakehub.comment(REPO, number, "/agent run")
    plan_task, run_task = scene.wait_settled()
    assert run_task.status == "succeeded", run_task.status_reason
    [pr] = scene.pulls()
    assert pr.pull.head_ref == run_task.branch
