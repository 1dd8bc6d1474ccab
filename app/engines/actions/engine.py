"""GitHub Actions as the execution engine: dispatch a run, act on its callbacks, follow its workflow run.

The runner only runs the agent and reports a patch; we commit, open the PR and write the check run as the
bot, exactly as for sandbox runs, so users see the same thing whichever engine ran.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import httpx
from githubkit.exception import RequestFailed

from app.agents.base import AgentResult, Usage
from app.agents.prompt import build_prompt
from app.github.report import Reporter, Stage
from app.logs import get_logger
from app.engines.actions import callback_tokens, dispatch as actions
from app.github import actions_api
from app.engines import context as issue_context
from app.engines import lifecycle
from app.engines.logsink import LogSink
from app.engines.git.branch_writer import BranchWriter
from app.engines.git.private_repo import GitError, PrivateRepo
from app.models import utcnow
from app.engines.publish import Outcome, publish
from app.engines.actions.runner_package import RunnerPackageUnavailable, requirements, runner_wheel, wheel_cache_dir
from app.engines.git.source import RepositorySource
from app.tasks.service import TaskService
from app.tasks.states import Status, is_terminal

WORKER = "actions"  # Run.worker for dispatched runs: no heartbeat of ours, GitHub runs them
# A runner may wait in GitHub's queue before it starts; the callback credential outlives the time limit by this.
QUEUE_MARGIN = timedelta(minutes=30)
# Agent options that may travel in the dispatch payload (read from the default branch's config).
_OPTION_KEYS = ("command", "allowed_tools", "max_turns", "max_cost_usd")


def public_base_url(settings) -> str:
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


async def start(runtime, tasks: TaskService, report: Reporter, task_id: int, run_id: int) -> Outcome | None:
    """Dispatch `run_id` to the repository's workflow. None when dispatched; an Outcome when refused."""
    task, run = tasks.get(task_id), tasks.get_run(run_id)
    owner, repo = task.repo_full_name.split("/", 1)
    gh = report.gh
    await report.stage(task, run, Stage.WORKSPACE)
    repo_ctx = await issue_context.repo_context(gh, task, runtime.settings)
    loaded, config, base_branch, default_branch = repo_ctx.loaded, repo_ctx.config, repo_ctx.base_branch, repo_ctx.default_branch
    if repo_ctx.refused:
        return Outcome(Status.FAILED, repo_ctx.refused)
    # The runner starts from the PR branch's head (the draft's start commit on a new task).
    work_branch = task.branch if task.pr_number and task.branch else base_branch
    start_sha = (await gh.rest.repos.async_get_branch(owner, repo, work_branch)).json()["commit"]["sha"]
    task = tasks.update(task.id, base_branch=base_branch, base_sha=task.base_sha or start_sha, head_sha=start_sha)

    if not await actions_api.check_workflow_installed(gh, owner, repo, default_branch):
        refused = actions_api.missing_workflow_outcome()
        return Outcome(Status.FAILED, f"{refused.reason} {refused.fix_hint}".strip())

    base_url = public_base_url(runtime.settings)
    try:
        install = await asyncio.to_thread(install_spec, runtime.settings, base_url)
    except RunnerPackageUnavailable as exc:
        return Outcome(Status.FAILED, str(exc))
    time_limit = int(repo_ctx.time_limit_seconds)
    token = callback_tokens.issue(runtime.engine, run.id, timedelta(seconds=time_limit) + QUEUE_MARGIN)
    context = await issue_context.gather(gh, owner, repo, task, loaded, runtime.engine,
                                         own_app_id=runtime.settings.github_app_id)
    options = {key: getattr(config, key) for key in _OPTION_KEYS if getattr(config, key, None) is not None}
    payload = actions.build_dispatch_payload(
        task, run, callback_url=f"{base_url}/api/runs/{run.id}/events", callback_token=token,
        oidc_audience=base_url, prompt=build_prompt(context), agent_options=options,
        time_limit_seconds=time_limit, test_command=config.test or None,
        heartbeat_seconds=heartbeat_interval(runtime.settings), install=install, start=(work_branch, start_sha),
    )
    outcome = await report.dispatch_run(task.repo_full_name, payload)
    if not outcome.ok:
        callback_tokens.revoke(runtime.engine, run.id)
        return Outcome(Status.FAILED, f"{outcome.reason} {outcome.fix_hint or ''}".strip())
    tasks.update_run(run.id, worker=WORKER)
    await report.stage(tasks.get(task.id), tasks.get_run(run.id), Stage.AGENT)
    return None


def heartbeat_interval(settings) -> float:
    """How often a runner says it is alive: well inside the heartbeat timeout, and no chattier than 20 s."""
    return round(max(0.5, min(20.0, settings.heartbeat_timeout_seconds / 3)), 2)


def install_spec(settings, base_url: str) -> dict:
    """What the workflow installs: the operator's pinned requirement, or this server's wheel and its hash."""
    if settings.runner_package:
        return {"package": settings.runner_package}
    wheel = runner_wheel(wheel_cache_dir(settings))
    return {"wheel": {"url": base_url + wheel.url_path(), "sha256": wheel.sha256}, "requirements": requirements()}


class RunEvents:
    """What the app does with an Actions run's reports (app.engines.actions.callbacks calls these)."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self.tasks = TaskService(runtime.engine)

    def alive(self, run_id: int) -> None:
        """Any batch from the runner (logs, heartbeats, progress) shows it started and still works."""
        self.tasks.runner_called(run_id)

    async def progress(self, run_id: int, stage: str) -> None:
        run = self.tasks.get_run(run_id)
        if run is None or is_terminal(run.status):
            return
        task = self.tasks.get(run.task_id)
        if stage in {s.value for s in Stage} and stage not in ("queued", "commit", "tests", "pull_request"):
            report = await lifecycle.reporter(self.runtime, self.tasks, task.installation_id)
            await report.stage(task, run, Stage(stage))

    async def result(self, run_id: int, result) -> None:
        run = self.tasks.get_run(run_id)
        if run is None or is_terminal(run.status):
            return
        task = self.tasks.get(run.task_id)
        report = await lifecycle.reporter(self.runtime, self.tasks, task.installation_id)
        usage = result.usage
        self.tasks.update_run(run_id, exit_code=result.exit_code, input_tokens=usage.input_tokens,
                              output_tokens=usage.output_tokens, cost_usd=usage.cost_usd,
                              agent_seconds=usage.agent_seconds)
        agent_result = AgentResult(success=result.success, summary=result.summary,
                                   usage=Usage(usage.input_tokens, usage.output_tokens, usage.cost_usd))
        secrets = list(self.runtime.settings.secret_values())
        if not result.success:
            outcome = Outcome(Status.FAILED, (result.error or f"the agent reported failure: {result.summary}")[:2000])
        elif task.mode == "plan":
            await report.plan(task, result.summary)
            outcome = Outcome(Status.SUCCEEDED)
        else:
            outcome = await self._publish(task, run, report, result, agent_result, secrets)
        await finish(self.runtime, self.tasks, report, run_id, outcome)

    async def _publish(self, task, run, report: Reporter, result, agent_result, secrets) -> Outcome:
        repo_ctx = await issue_context.repo_context(report.gh, task, self.runtime.settings)
        root = Path(tempfile.mkdtemp(prefix=f"draftsmith-actions-{run.id}-", dir=self._workspaces()))
        try:
            source = RepositorySource(self.runtime.github, task.installation_id, task.repo_full_name,
                                      repo_ctx.repository["clone_url"], PrivateRepo.create(root / "git"))
            branch = task.branch if task.pr_number and task.branch else task.base_branch
            head = await source.fetch(branch)
            # The runner's patch was made against the dispatched commit; if the branch moved since, the
            # writer puts it on top of the new commits.
            start_sha = task.head_sha if task.head_sha and _has_commit(source.private, task.head_sha) else head
            try:
                snapshot = await asyncio.to_thread(source.private.apply_patch, start_sha, (result.patch or "").encode())
            except GitError as exc:
                return Outcome(Status.NEEDS_ATTENTION, f"the patch from the Actions run does not apply to `{branch}`: "
                               f"{str(exc)[:500]}")
            with LogSink(self.runtime.engine, run.id, secrets=secrets) as sink:
                return await publish(
                    engine=self.runtime.engine, tasks=self.tasks, report=report, task_id=task.id, run_id=run.id,
                    writer=BranchWriter(report.gh, source, branch, start_sha,
                                        log=lambda text: sink.write("system", text)),
                    take_snapshot=lambda: snapshot, config=repo_ctx.config,
                    agent_result=agent_result, log=lambda text: sink.write("system", text), secrets=secrets,
                    tests_passed=result.tests_passed, agent_seconds=result.usage.agent_seconds,
                )
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def _workspaces(self) -> str:
        directory = Path(self.runtime.settings.effective_workspace_dir)
        directory.mkdir(parents=True, exist_ok=True)
        return str(directory)


def _has_commit(private: PrivateRepo, sha: str) -> bool:
    try:
        private.rev_parse(sha)
    except GitError:
        return False
    return True


async def finish(runtime, tasks: TaskService, report: Reporter, run_id: int, outcome: Outcome) -> None:
    """End the run as every engine does, and close its callback window first: nothing more is accepted."""
    callback_tokens.revoke(runtime.engine, run_id)
    await lifecycle.finish(runtime, tasks, report, run_id, outcome)


async def link_workflow_run(runtime, gh, run_id: int, actions_run: dict) -> None:
    """A workflow_run/job event for one of our runs: link it, and end the task if it ended without reporting."""
    tasks = TaskService(runtime.engine)
    run = tasks.get_run(run_id)
    if run is None:
        return
    if run.actions_run_id != actions_run["id"]:
        tasks.update_run(run_id, actions_run_id=actions_run["id"], actions_run_url=actions_run.get("html_url"))
    if is_terminal(run.status):
        return
    task = tasks.get(run.task_id)
    report = Reporter.for_runtime(runtime, gh, tasks, await runtime.github.identity())
    if actions_run.get("status") == "completed":
        conclusion = actions_run.get("conclusion") or "unknown"
        status = Status.CANCELLED if conclusion == "cancelled" else (
            Status.TIMED_OUT if conclusion == "timed_out" else Status.FAILED)
        url = actions_run.get("html_url")
        where = f" ([Actions run]({url}))" if url else ""
        await finish(runtime, tasks, report, run_id, Outcome(
            status, f"the GitHub Actions run ended ({conclusion}) without reporting a result{where}"))
    else:
        tasks.heartbeat(run_id)  # GitHub says it is queued or running: alive, whatever the runner says
        if actions_run.get("html_url"):
            await report.link_details(task, actions_run["html_url"])


async def check_on(runtime, tasks: TaskService, task, run) -> bool:
    """A dispatched run went quiet: ask GitHub before ending it. Returns whether it was ended.

    GitHub's word decides: a completed workflow run ends ours with its conclusion; one queued or running is
    left alone, unless its runner never called back within the start-up timeout.
    """
    owner, repo = task.repo_full_name.split("/", 1)
    gh = runtime.github.installation_client(task.installation_id)
    log = get_logger(task_id=task.id, run_id=run.id)
    try:
        found = await actions_api.find_workflow_run(gh, owner, repo, title=actions.run_name(run.id, task.id),
                                                    actions_run_id=run.actions_run_id, since=run.started_at)
    except (RequestFailed, httpx.HTTPError) as exc:
        log.warning("actions_run_unknown", error_type=type(exc).__name__)
        found, unknown = None, True
    else:
        unknown = False
    if found is not None and found.get("status") == "completed":
        await link_workflow_run(runtime, gh, run.id, found)
        return True
    now = utcnow()
    startup = timedelta(seconds=runtime.settings.actions_startup_timeout_seconds)
    closes_at = callback_tokens.window_closes_at(runtime.engine, run.id)
    if run.runner_seen_at is None and run.started_at and now - run.started_at > startup and not unknown:
        report = await lifecycle.reporter(runtime, tasks, task.installation_id)
        if found is not None:
            try:  # so a runner that turns up late does not work for a run that has ended
                await report.cancel_workflow_run(task.repo_full_name, found["id"])
            except RequestFailed as exc:
                log.warning("actions_run_not_cancelled", status=exc.response.status_code)
        await finish(runtime, tasks, report, run.id, Outcome(Status.FAILED, never_started_reason(found, startup)))
        return True
    if closes_at is not None and now > closes_at:
        report = await lifecycle.reporter(runtime, tasks, task.installation_id)
        await finish(runtime, tasks, report, run.id, Outcome(
            Status.FAILED, "the GitHub Actions run sent no result before its time limit ran out"))
        return True
    if found is not None and run.actions_run_id != found.get("id"):
        tasks.update_run(run.id, actions_run_id=found["id"], actions_run_url=found.get("html_url"))
    tasks.heartbeat(run.id)  # queued or running as far as GitHub knows (or it cannot say now): ask again later
    return False


def never_started_reason(found: dict | None, startup: timedelta) -> str:
    minutes = f"{startup.total_seconds() / 60:g} min"
    if found is None:
        return (f"the GitHub Actions run never started: no run of `{actions_api.WORKFLOW_PATH}` appeared within "
                f"{minutes} of the dispatch (are Actions enabled for this repository, with the workflow on "
                f"its default branch?)")
    link = f" ([Actions run]({found['html_url']}))" if found.get("html_url") else ""
    if found.get("status") in ("queued", "waiting", "pending", "requested"):
        return (f"the GitHub Actions run never started: GitHub still had it {found['status']} {minutes} after "
                f"the dispatch, so it was cancelled; is a runner with the workflow's `runs-on` labels online?"
                f"{link}")
    return (f"the GitHub Actions run never started `draftsmith actions-run` within {minutes} (a setup step may "
            f"hang, or the runner cannot reach this server), so it was cancelled{link}")


class ActionsEngine:
    """Runs go to the repository's own workflow; its callbacks, webhooks and GitHub's API say how they end."""

    name = "actions"

    async def run(self, runtime, tasks: TaskService, task, run) -> None:
        report = await lifecycle.reporter(runtime, tasks, task.installation_id)
        try:
            refused = await start(runtime, tasks, report, task.id, run.id)
        except Exception as exc:
            get_logger(task_id=task.id, run_id=run.id).exception("dispatch failed")
            refused = Outcome(Status.FAILED, f"{type(exc).__name__}: {exc}")
        if refused is not None:
            await finish(runtime, tasks, report, run.id, refused)

    async def cancel(self, runtime, gh, task, run) -> None:
        """Ask GitHub to cancel the workflow run, and end ours now: no worker of ours watches the flag."""
        tasks = TaskService(runtime.engine)
        report = Reporter.for_runtime(runtime, gh, tasks, await runtime.github.identity())
        if run.actions_run_id:
            await report.cancel_workflow_run(task.repo_full_name, run.actions_run_id)
        await finish(runtime, tasks, report, run.id,
                     Outcome(Status.CANCELLED, task.status_reason or "cancelled on request"))

    async def check_on(self, runtime, tasks: TaskService, task, run) -> bool:
        return await check_on(runtime, tasks, task, run)
