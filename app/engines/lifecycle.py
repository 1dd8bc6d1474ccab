"""What every run goes through whichever engine runs it: start, finish, the next task, recovery when quiet."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from app.engines.publish import Outcome
from app.engines.registry import engine_for
from app.github import gitdata
from app.github.report import Reporter
from app.logs import get_logger
from app.tasks.service import TaskService
from app.tasks.states import Status

STRANDED_AFTER = timedelta(minutes=1)
STRANDED_REQUESTS = 50


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def reporter(runtime, tasks: TaskService, installation_id: int) -> Reporter:
    gh = runtime.github.installation_client(installation_id)
    return Reporter.for_runtime(runtime, gh, tasks, await runtime.github.identity())


def queue_run(runtime) -> None:
    """Ask for a run slot: a run was queued, or one ended and another may start in its place.

    The message names no run. The slot that takes it starts the fairest queued run (execute_next), so
    one installation's burst cannot sit in front of another's run, and a message lost or taken twice
    changes nothing: a spare one finds nothing to start, and the sweeper asks again for runs left waiting.
    """
    try:
        runtime.broker.get_actor("run_next").send()
    except Exception:
        get_logger().warning("run_slot_not_requested; the sweeper asks again", exc_info=True)


async def execute_next(runtime) -> bool:
    """In a free run slot: start the queued run that is next in fair order; False when none may start."""
    tasks = TaskService(runtime.engine)
    started = tasks.claim_next_run(worker_name(), runtime.settings.max_concurrent_tasks)
    if started is None:
        return False
    await _execute(runtime, tasks, started)
    return True


async def execute_run(runtime, run_id: int) -> None:
    """Start one given attempt (messages queued before fair dispatch name their run). Safe to call twice:
    a run that already started is left alone."""
    tasks = TaskService(runtime.engine)
    started = tasks.start_run(run_id, worker=worker_name())
    if started is None:
        return
    await _execute(runtime, tasks, started)


async def _execute(runtime, tasks: TaskService, started) -> None:
    run_id = started.run.id
    task = started.task
    if started.run.attempt > 1 and task.branch:  # the attempt before may have died leaving a check run behind
        try:
            report = await reporter(runtime, tasks, task.installation_id)
            await report.close_stray_check_runs(task)
        except Exception as exc:  # tidying up must not keep the run from starting
            get_logger(task_id=task.id, run_id=run_id).warning("stray_check_runs_not_closed",
                                                               error_type=type(exc).__name__)
    if needs_draft(task):  # intake could not open it (GitHub was down), or a retry after "no changes"
        report = await reporter(runtime, tasks, task.installation_id)
        try:
            # The intake that died before queueing this run may have posted the progress comment unrecorded.
            task = await report.adopt_progress_comment(task)
            task = await open_draft(runtime, tasks, report, task, started.run)
        except Exception as exc:
            get_logger(task_id=task.id, run_id=run_id).warning("draft_failed", error_type=type(exc).__name__)
            await finish(runtime, tasks, report, run_id, Outcome(
                Status.FAILED, f"could not open the draft pull request ({type(exc).__name__}); retry in a moment"))
            return
        if task is None:
            return
    await engine_for(task.runner).run(runtime, tasks, task, started.run)


def needs_draft(task) -> bool:
    """A task that will change code gets its draft PR before the agent starts; a plan gets none."""
    return task.mode == "run" and task.pr_number is None


async def open_draft(runtime, tasks: TaskService, report: Reporter, task, run):
    """Open the task's draft PR if it has none yet. None when impossible: the task then failed, saying why."""
    if not needs_draft(task):
        return task
    try:
        return await report.open_draft(task, run)
    except gitdata.BaseBranchMissing as exc:
        reason = (f"the branch `{exc.branch}` does not exist in {task.repo_full_name}, so there is nothing to "
                  f"start from. Name an existing branch with `--base`.")
        await finish(runtime, tasks, report, run.id, Outcome(Status.FAILED, reason))
        return None


async def finish(runtime, tasks: TaskService, report: Reporter, run_id: int, outcome: Outcome) -> None:
    """Record how the run ended, report it on GitHub, and start the task queued behind this one."""
    usage = outcome.agent.usage if outcome.agent else None
    measured = {
        "exit_code": outcome.exit_code, "tests_passed": outcome.tests_passed, "agent_seconds": outcome.agent_seconds,
        "input_tokens": usage.input_tokens if usage else None, "output_tokens": usage.output_tokens if usage else None,
        "cost_usd": usage.cost_usd if usage else None,
    }
    # Only what this outcome measured: an engine may have stored the rest on the run already.
    finished = tasks.finish(run_id, outcome.status, reason=outcome.reason,
                            **{key: value for key, value in measured.items() if value is not None})
    if finished is None:
        return
    await report_end(tasks, report, finished)
    queue_run(runtime)  # its slot is free, and a task queued behind it on the same issue may start


async def report_end(tasks: TaskService, report: Reporter, finished) -> None:
    """Write a run's end back to GitHub, then note that it was: a worker killed in between leaves the check
    run 'in progress' on GitHub although the task ended, and report_unreported_ends says it again."""
    await report.finished(finished.task, finished.run)
    tasks.mark_reported(finished.run.id)


async def report_unreported_ends(runtime, older_than: timedelta | None = None) -> int:
    """Write back the ends a dead worker recorded but did not report (older than the heartbeat timeout, so
    not one a live worker is writing now). Returns how many."""
    tasks = TaskService(runtime.engine)
    older_than = older_than or timedelta(seconds=runtime.settings.heartbeat_timeout_seconds)
    done = 0
    for finished in tasks.unreported_ends(older_than):
        try:
            report = await reporter(runtime, tasks, finished.task.installation_id)
            await report_end(tasks, report, finished)
            done += 1
        except Exception as exc:  # GitHub still away: the next sweep tries again
            get_logger(task_id=finished.task.id, run_id=finished.run.id).warning(
                "report_end_failed", error_type=type(exc).__name__)
    return done


async def recover_dead_runs(runtime, older_than: timedelta | None = None) -> int:
    """Ask each running run's engine about runs whose heartbeat went quiet. Returns how many were ended."""
    tasks = TaskService(runtime.engine)
    older_than = older_than or timedelta(seconds=runtime.settings.heartbeat_timeout_seconds)
    recovered = 0
    for run in tasks.dead_runs(older_than):
        task = tasks.get(run.task_id)
        try:
            recovered += await engine_for(task.runner).check_on(runtime, tasks, task, run)
        except Exception as exc:  # one run's GitHub trouble must not keep the others from recovery
            get_logger(task_id=task.id, run_id=run.id).warning("recovery_failed", error_type=type(exc).__name__)
    return recovered


def release_abandoned_runs(runtime) -> int:
    """Release queued runs held three heartbeat timeouts: the intake setting each up died or gave up, and
    the run opens its draft itself when it starts. Intake's own resume (its delivery handled again after one
    timeout) goes first, so the two never open a draft each."""
    return TaskService(runtime.engine).release_abandoned_runs(
        timedelta(seconds=3 * runtime.settings.heartbeat_timeout_seconds))


def requeue_stranded_runs(runtime, older_than: timedelta | None = None) -> int:
    """Ask for run slots for queued runs no message will reach (Redis lost it, a dead worker held it).

    Call it only when no slot request waits in the queue (the sweeper checks): one that waits will start
    the fairest run, so a deep queue is not stranded however long its runs wait. One request per such
    run, at most STRANDED_REQUESTS a sweep; which runs they start is the fair order's choice.
    """
    stranded = TaskService(runtime.engine).stranded_queued_runs(older_than or STRANDED_AFTER)
    for _ in stranded[:STRANDED_REQUESTS]:
        queue_run(runtime)
    return min(len(stranded), STRANDED_REQUESTS)
