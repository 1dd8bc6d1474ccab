"""runner: actions survives a real runner's start-up: silence is not death while GitHub says the run is queued or
the runner still beats, and the sweeper asks GitHub before it ends a run that went quiet."""

from __future__ import annotations

import threading
import time

import pytest

from app.deliveries.sweeper import Sweeper
from tests.e2e.conftest import REPO, Scene
from tests.support.actions_runner import WORKFLOW, play_runner

SLOW_AGENT = ("runner: actions\nagent: command\n"
              "command: \"echo thinking && sleep 5 && sed -i 's/tpyo/typo/' README.md && echo fixed\"\n")


@pytest.fixture
def impatient(make_draftsmith, fakehub):
    """The app with a 2 s heartbeat timeout and its sweeper looking every 0.3 s."""

    def make(**settings) -> Scene:
        server = make_draftsmith(fakehub.env(), DRAFTSMITH_HEARTBEAT_TIMEOUT=2, **settings)
        fakehub.webhook_url = server.webhook_url
        sweeper = Sweeper(server.runtime, interval=0.3).start()
        started.append(sweeper)
        return Scene(fakehub, server)

    started: list[Sweeper] = []
    yield make
    for sweeper in started:
        sweeper.stop()


def _dispatch(scene: Scene, fakehub, config: str = SLOW_AGENT):
    scene.repo(config, files={".github/workflows/draftsmith.yml": WORKFLOW})
    number = fakehub.open_issue(REPO, "Fix typo in README", "The README says tpyo.")
    fakehub.assign(REPO, number, scene.bot)
    dispatch = scene.wait_for(lambda: fakehub.repo(REPO).dispatches[:1], what="a repository_dispatch")[0]
    [workflow_run] = scene.wait_for(lambda: list(fakehub.state.workflow_runs.values()), what="the workflow run")
    return number, dispatch.client_payload, workflow_run


def test_a_runner_slow_to_start_with_a_silent_agent_still_ends_in_a_ready_pull_request(impatient, fakehub, tmp_path):
    scene = impatient()
    number, payload, workflow_run = _dispatch(scene, fakehub)
    assert payload["callback"]["heartbeat_seconds"] < 2

    # GitHub keeps the job queued for 5 s (2.5 heartbeat timeouts) before a runner picks it up ...
    time.sleep(5)
    [task] = scene.tasks()
    assert task.status == "running", task.status_reason
    # ... and then the agent says nothing for 5 s
    done = play_runner(fakehub, payload, tmp_path, REPO)
    assert done.returncode == 0, done.stdout + done.stderr

    [task] = scene.wait_settled()
    assert task.status == "succeeded", task.status_reason
    [pr] = scene.pulls()
    assert pr.pull.draft is False
    check = scene.check_run()
    assert (check.status, check.conclusion) == ("completed", "success")
    run = scene.runs(task.id)[0]
    assert run.runner_seen_at is not None and run.actions_run_id == workflow_run.id


def test_a_run_github_keeps_queued_past_the_start_up_timeout_fails_as_never_started(impatient, fakehub):
    scene = impatient(DRAFTSMITH_ACTIONS_STARTUP_TIMEOUT=3)
    number, _payload, workflow_run = _dispatch(scene, fakehub)

    [task] = scene.wait_settled(timeout=30)
    assert task.status == "failed" and "never started" in task.status_reason
    assert "queued" in task.status_reason and "runs-on" in task.status_reason
    # Cancelled on GitHub too, so a runner that turns up late does not work for nothing
    assert (workflow_run.status, workflow_run.conclusion) == ("completed", "cancelled")
    [check] = scene.wait_for(lambda: [c for c in scene.check_runs() if c.status == "completed"], what="the check run")
    assert check.conclusion == "failure" and "never started" in check.output["summary"]
    progress = scene.wait_for(lambda: [c for c in scene.bot_comments(number)
                                       if "draftsmith:progress" in c.body and "never started" in c.body], what="report")
    assert progress


@pytest.mark.parametrize(("conclusion", "status"), [("cancelled", "cancelled"), ("failure", "failed")])
def test_a_run_github_ended_without_a_word_to_us_ends_with_githubs_conclusion(impatient, fakehub, conclusion, status):
    scene = impatient()
    _number, _payload, workflow_run = _dispatch(scene, fakehub)
    scene.wait_for(lambda: scene.runs(scene.tasks()[0].id)[0].actions_run_id, what="the linked workflow run")
    time.sleep(3)  # past the heartbeat timeout: the sweeper has asked GitHub and left the queued run alone
    assert scene.tasks()[0].status == "running"

    # The workflow run ends, and its webhook is lost: only the sweeper's question can notice
    with fakehub.state.lock:
        workflow_run.status, workflow_run.conclusion = "completed", conclusion

    [task] = scene.wait_settled(timeout=30)
    assert task.status == status and conclusion in task.status_reason
    # The report follows the task's end (the sweeper writes it right after)
    [check] = scene.wait_for(lambda: [c for c in scene.check_runs() if c.status == "completed"], what="the check run")
    assert check.conclusion != "success"
    assert any(r.method == "GET" and r.path.endswith(f"/actions/runs/{workflow_run.id}") for r in fakehub.requests())
