"""runner: sandbox, the default: our own workers run the agent in a sandbox, beating a heartbeat as they go."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from app.agents.base import AgentNotInstalled, MissingCredentials
from app.engines import lifecycle
from app.engines.logsink import LogSink
from app.engines.publish import Outcome
from app.engines.sandbox.pipeline import Heartbeat, RunStopped, run_in_sandbox
from app.logs import get_logger
from app.models import Run, Task
from app.tasks.service import TaskService
from app.tasks.states import Status


class SandboxEngine:
    name = "sandbox"

    async def run(self, runtime, tasks: TaskService, task: Task, run: Run) -> None:
        log = get_logger(task_id=task.id, run_id=run.id, repo=task.repo_full_name)
        report = await lifecycle.reporter(runtime, tasks, task.installation_id)
        secrets = list(runtime.settings.secret_values())
        sink = LogSink(runtime.engine, run.id, secrets=secrets)
        # Absolute: the default data dir is relative (.draftsmith), and bwrap resolves bind sources elsewhere.
        workspace_root = Path(runtime.settings.effective_workspace_dir).absolute() / f"run-{run.id}"
        outcome = Outcome(Status.FAILED, "the run ended unexpectedly")
        try:
            with Heartbeat(tasks, run.id) as heartbeat, contextlib.ExitStack() as stack:
                outcome = await run_in_sandbox(runtime, tasks, report, task.id, run.id, sink, secrets,
                                               workspace_root, heartbeat.cancel, log, stack)
        except RunStopped as stop:
            reason = stop.reason
            if stop.status is Status.CANCELLED:  # say who cancelled and from where, as request_cancel recorded
                reason = tasks.get(task.id).status_reason or reason
            outcome = Outcome(stop.status, reason)
        except (MissingCredentials, AgentNotInstalled) as exc:
            outcome = Outcome(Status.FAILED, str(exc))
        except Exception as exc:  # anything unexpected still ends the task visibly
            log.exception("run failed")
            outcome = Outcome(Status.FAILED, f"{type(exc).__name__}: {exc}")
        finally:
            sink.write("system", f"run finished: {outcome.status.value}"
                       + (f" ({outcome.reason})" if outcome.reason else ""))
            sink.close()
            shutil.rmtree(workspace_root, ignore_errors=True)
        await lifecycle.finish(runtime, tasks, report, run.id, outcome)
        log.info("run ended", status=outcome.status.value)

    async def cancel(self, runtime, gh, task: Task, run: Run) -> None:
        """Nothing to do now: the worker's heartbeat sees the flag and stops the sandbox."""

    async def check_on(self, runtime, tasks: TaskService, task: Task, run: Run) -> bool:
        """Our worker stopped beating, so it died: fail the run, or re-queue it once if configured to."""
        finished = tasks.finish(run.id, Status.FAILED, reason="the worker running this task stopped responding")
        if finished is None:
            return False
        report = await lifecycle.reporter(runtime, tasks, task.installation_id)
        if run.attempt == 1 and await _requeues_dead_runs(runtime, report.gh, finished.task):
            again = tasks.retry(task.id)
            try:
                await report.requeued(again.task, again.run)
            finally:  # GitHub away or not, the new attempt must not stay held
                tasks.release_run(again.run.id)
                lifecycle.queue_run(runtime)
        else:
            await lifecycle.report_end(tasks, report, finished)
        return True


async def _requeues_dead_runs(runtime, gh, task) -> bool:
    """The repository's `requeue_dead_runs` when its config sets one, else the server's setting."""
    from app.github.repo_config import load_repo_config

    owner, repo = task.repo_full_name.split("/", 1)
    try:
        chosen = (await load_repo_config(gh, owner, repo, None)).config.requeue_dead_runs
    except Exception as exc:  # GitHub unreachable: the server's setting decides rather than nothing
        get_logger(task_id=task.id).warning("repo_config_unreadable", error_type=type(exc).__name__)
        chosen = None
    return runtime.settings.requeue_dead_runs if chosen is None else chosen
