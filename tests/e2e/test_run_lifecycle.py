"""How a run ends when things go wrong: agent failure, time limit, cancel, retry, and a worker that dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.engines.lifecycle import recover_dead_runs
from tests.e2e.conftest import REPO, Scene, command_config

# Unusual sleep lengths name the agent's processes, so the test can look for leftovers on the host.
MARKER = "31.4159"


def _leftover_processes(marker: str = MARKER) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"sleep {marker}" in cmdline and "sh -c" not in cmdline:
            found.append(int(entry.name))
    return found


def _wait_gone(marker: str = MARKER, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _leftover_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _wait_agent_started(scene: Scene, attempt: int = 1, timeout: float = 30.0):
    """Wait until the agent of the task's `attempt` printed `agent-started` (so it is really running)."""

    def started():
        tasks = scene.tasks()
        if not tasks:
            return None
        runs = [r for r in scene.runs(tasks[-1].id) if r.attempt == attempt]
        if runs and any(line.text == "agent-started" for line in scene.logs(runs[0].id)):
            return tasks[-1], runs[0]
        return None

    return scene.wait_for(started, timeout, f"attempt {attempt}'s agent to start")


def _check(scene: Scene):
    check = scene.check_run()
    return check


def test_an_agent_that_exits_non_zero_fails_the_task_with_its_reason_and_a_retry_button(scene, fakehub):
    scene.repo(command_config("echo about to give up; echo cannot parse the README >&2; exit 3"))
    number = fakehub.open_issue(REPO, "Fix typo in README")
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    assert task.status == "failed"
    assert "command exited 3" in task.status_reason and "cannot parse the README" in task.status_reason
    check = _check(scene)
    assert (check.status, check.conclusion) == ("completed", "failure")
    assert [a["identifier"] for a in check.actions] == ["retry"]
    [progress] = scene.bot_comments(number)
    assert "Failed" in progress.body and "cannot parse the README" in progress.body
    assert "/agent retry" in progress.body
    [pr] = scene.pulls()
    assert pr.pull.draft is True and "stays a draft" in pr.body, "the draft stays, saying why"
    [run] = scene.runs(task.id)
    assert run.exit_code == 3


def test_a_run_over_the_time_limit_times_out_and_its_whole_process_group_is_killed(make_scene, fakehub):
    scene = make_scene(DRAFTSMITH_RUN_TIME_LIMIT="2")
    # The agent leaves a background child behind as well as its foreground sleep.
    scene.repo(command_config(f"sleep {MARKER} & echo agent-started; sleep {MARKER}"))
    number = fakehub.open_issue(REPO, "Fix typo in README")
    started = time.monotonic()
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled(timeout=30)

    assert time.monotonic() - started < 15
    assert task.status == "timed_out" and "2 seconds" in task.status_reason
    assert _wait_gone() == [], "the agent's processes outlived the time limit"
    check = _check(scene)
    assert (check.status, check.conclusion) == ("completed", "timed_out")
    [progress] = scene.bot_comments(number)
    assert "Timed out" in progress.body
    [pr] = scene.pulls()
    assert pr.pull.draft is True and "stays a draft" in pr.body, "the draft stays, saying why"


def test_cancel_from_a_comment_and_the_check_run_button_then_retry_and_rerun_start_new_attempts(scene, fakehub):
    scene.repo(command_config(f"echo agent-started; sleep {MARKER}"))
    number = fakehub.open_issue(REPO, "Fix typo in README")

    # Given a running agent, when alice comments /agent cancel, it stops within seconds
    fakehub.assign(REPO, number, scene.bot)
    _wait_agent_started(scene, attempt=1)
    asked = time.monotonic()
    fakehub.comment(REPO, number, "/agent cancel")
    [task] = scene.wait_settled(timeout=30)
    assert time.monotonic() - asked < 10
    assert task.status == "cancelled" and "cancelled by @alice" in task.status_reason
    assert _wait_gone() == []
    check = _check(scene)
    assert (check.status, check.conclusion) == ("completed", "cancelled")
    progress = [c for c in scene.bot_comments(number) if "Draftsmith" in c.body][0]
    assert "Cancelled" in progress.body

    # When alice comments /agent retry, a second attempt runs; the check run's Cancel button stops it
    fakehub.comment(REPO, number, "/agent retry")
    _wait_agent_started(scene, attempt=2)
    check = _check(scene)
    assert check.status == "in_progress" and [a["identifier"] for a in check.actions] == ["cancel"]
    fakehub.request_check_run_action(check.id, "cancel")
    [task] = scene.wait_settled(timeout=30)
    assert task.status == "cancelled" and "from the check run" in task.status_reason
    assert _wait_gone() == []
    assert _check(scene).conclusion == "cancelled"

    # When alice presses GitHub's Re-run on the check run, a third attempt starts
    fakehub.rerequest_check_run(check.id)
    _wait_agent_started(scene, attempt=3)
    fakehub.comment(REPO, number, "/agent cancel")
    [task] = scene.wait_settled(timeout=30)
    assert [r.status for r in scene.runs(task.id)] == ["cancelled", "cancelled", "cancelled"]
    assert _wait_gone() == []


def _worker_process(settings, *, sweep: bool) -> subprocess.Popen:
    """A worker in its own process (what `draftsmith worker` runs), so the test can kill it like a crash."""
    env = dict(os.environ)
    env.update(
        GITHUB_APP_ID=str(settings.github_app_id),
        GITHUB_PRIVATE_KEY_PATH=str(settings.github_private_key_path),
        GITHUB_WEBHOOK_SECRET=settings.github_webhook_secret.get_secret_value(),
        GITHUB_API_URL=settings.github_api_url,
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        DRAFTSMITH_DATA_DIR=str(settings.data_dir),
        DRAFTSMITH_HEARTBEAT_TIMEOUT=str(settings.heartbeat_timeout_seconds),
        DRAFTSMITH_SWEEP_INTERVAL=str(settings.sweep_interval_seconds),
        DRAFTSMITH_REQUEUE_DEAD_RUNS="true" if settings.requeue_dead_runs else "false",
    )
    argv = [sys.executable, "-m", "app.queue.worker", "--threads", "2"] + (["--sweep"] if sweep else [])
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _kill_worker_mid_agent_then_sweep(scene: Scene, fakehub, *, runs_expected: int) -> tuple[int, object]:
    """Assign the issue to a worker process, kill it while the agent runs, and let a sweeping worker end
    the run. Returns the issue number and the settled task."""
    number = fakehub.open_issue(REPO, "Fix typo in README")
    doomed = _worker_process(scene.app.settings, sweep=False)
    try:
        # Given a worker process running the agent
        fakehub.assign(REPO, number, scene.bot)
        _wait_agent_started(scene, attempt=1)

        # When the worker is killed without warning
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
    finally:
        _stop(doomed)
    [task] = scene.tasks()
    assert task.status == "running", "nothing wrote an end: as after a real crash"
    assert _wait_gone() == [], "the sandbox dies with its worker"

    # Then a worker that sweeps notices the silent heartbeat and writes the end everywhere
    # (Not wait_settled: the dead worker's unacknowledged message stays in Redis until dramatiq's
    # occasional maintenance gives it back, and run_task then leaves the ended run alone.)
    survivor = _worker_process(scene.app.settings, sweep=True)
    try:
        def ended():
            [task] = scene.tasks()
            runs = scene.runs(task.id)
            settled = task.status not in ("queued", "running") and runs[-1].status not in ("queued", "running")
            return task if settled and len(runs) == runs_expected else None

        task = scene.wait_for(ended, 40, "the dead run to be ended")
    finally:
        _stop(survivor)
    return number, task


@pytest.mark.parametrize(("server", "repository"), [(False, None), (True, None), (False, True), (True, False)],
                         ids=["marked-failed", "requeued-once", "requeued-by-repo-config", "kept-failed-by-repo-config"])
def test_a_worker_killed_mid_run_leaves_nothing_stuck_running(make_scene, fakehub, server, repository):
    requeue = server if repository is None else repository  # the repository's config wins when it says
    scene = make_scene(DRAFTSMITH_HEARTBEAT_TIMEOUT="3", DRAFTSMITH_SWEEP_INTERVAL="0.5",
                       DRAFTSMITH_REQUEUE_DEAD_RUNS=str(server).lower())
    scene.app.stop_worker()  # the work happens in worker processes this test can kill
    # The first attempt is still sleeping when its worker dies; a re-queued second one finishes.
    extra = {} if repository is None else {"requeue_dead_runs": repository}
    scene.repo(command_config(f"echo agent-started; sleep {MARKER} & sleep 4; sed -i 's/tpyo/typo/' README.md", **extra))
    number, task = _kill_worker_mid_agent_then_sweep(scene, fakehub, runs_expected=2 if requeue else 1)
    runs = scene.runs(task.id)
    assert runs[0].status == "failed" and "stopped responding" in runs[0].error
    check = _check(scene)
    [progress] = [c for c in scene.bot_comments(number) if "Draftsmith" in c.body]
    if requeue:
        assert [r.status for r in runs] == ["failed", "succeeded"]
        assert task.status == "succeeded"
        assert (check.status, check.conclusion) == ("completed", "success")
        assert len(scene.pulls()) == 1
    else:
        assert len(runs) == 1 and task.status == "failed"
        assert (check.status, check.conclusion) == ("completed", "failure")
        assert "Failed" in progress.body and "stopped responding" in progress.body
        assert "stopped responding" in check.output["title"]


# How far the run got, as the progress comment and the check run list it: the agent was working when it died.
DIED_IN_THE_AGENT = """- [x] Queued
- [x] Setting up workspace
- [ ] **Agent working** ❌
- [ ] Committing changes
- [ ] Running tests
- [ ] Pull request"""


def test_a_run_the_sweeper_ends_after_its_agent_started_shows_the_stage_it_died_in(make_scene, fakehub):
    scene = make_scene(DRAFTSMITH_HEARTBEAT_TIMEOUT="3", DRAFTSMITH_SWEEP_INTERVAL="0.5",
                       DRAFTSMITH_REQUEUE_DEAD_RUNS="false")
    scene.app.stop_worker()  # the work happens in worker processes this test can kill
    scene.repo(command_config(f"echo agent-started; sleep {MARKER}"))
    # (the sweeper runs in another process than the worker that reached the agent: only the run row knows)
    number, task = _kill_worker_mid_agent_then_sweep(scene, fakehub, runs_expected=1)
    assert task.status == "failed"
    [progress] = [c for c in scene.bot_comments(number) if "Draftsmith" in c.body]
    assert DIED_IN_THE_AGENT in progress.body
    assert DIED_IN_THE_AGENT in _check(scene).output["text"]


def test_recovery_leaves_runs_with_a_live_heartbeat_alone(scene, fakehub):
    import asyncio

    scene.repo(command_config(f"echo agent-started; sleep {MARKER}"))
    number = fakehub.open_issue(REPO, "Fix typo in README")
    fakehub.assign(REPO, number, scene.bot)
    [task, run] = _wait_agent_started(scene)
    assert asyncio.run(recover_dead_runs(scene.app.runtime)) == 0
    assert scene.tasks()[0].status == "running"
    fakehub.comment(REPO, number, "/agent cancel")
    [task] = scene.wait_settled(timeout=30)
    assert task.status == "cancelled"


def test_a_run_whose_worker_died_while_writing_its_end_back_is_reported_by_the_sweeper(scene, fakehub):
    from datetime import timedelta

    from app.deliveries.sweeper import recover_runs
    from app.models import utcnow
    from app.tasks.service import TaskService

    # Given a task that ran to its PR, whose worker was killed after recording the end and before writing it
    # back: GitHub still shows the check run working
    scene.repo(command_config("sed -i 's/tpyo/typo/' README.md && echo fixed the typo"))
    number = fakehub.open_issue(REPO, "Fix typo in README", "The README says tpyo.")
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()
    assert task.status == "succeeded", task.status_reason
    with fakehub.state.lock:
        check = fakehub.state.check_runs[task.check_run_id]
        check.status, check.conclusion = "in_progress", None
    [run] = scene.runs(task.id)
    TaskService(scene.app.engine).update_run(run.id, reported_at=None, ended_at=utcnow() - timedelta(minutes=2))

    # When the sweeper looks, then it writes the end back once
    assert recover_runs(scene.app.runtime) == 1
    current = scene.check_run(task)
    assert (current.status, current.conclusion) == ("completed", "success")
    assert recover_runs(scene.app.runtime) == 0
    [progress] = scene.bot_comments(number)
    assert "Done" in progress.body
