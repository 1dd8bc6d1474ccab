"""One run of a task on our own workers: workspace, agent in the sandbox, commit, draft PR, report."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from app.agents.base import AgentRequest, AgentResult, MissingCredentials, redact
from app.agents.prompt import build_prompt
from app.agents.registry import get_agent
from app.github import gitdata
from app.github.report import Reporter, Stage
from app.github.repo_config import load_repo_config
from app.logs import get_logger
from app.models import Artifact
from app.db import session_scope
from app.runners import context as issue_context
from app.runners.changes import ChangesRefused, collect_changes
from app.runners.logsink import LogSink
from app.runners.sandbox import SandboxSpec, select_sandbox
from app.runners.workspace import clone
from app.tasks.service import TaskService
from app.tasks.states import Status

HEARTBEAT_SECONDS = 2.0


class RunStopped(Exception):
    """The run ends early with a given final status (cancelled, timed out, needs attention...)."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    """Beats while the run lives; notices a cancel asked for from anywhere (comment, check run button)."""

    def __init__(self, tasks: TaskService, run_id: int, interval: float = HEARTBEAT_SECONDS) -> None:
        self.tasks = tasks
        self.run_id = run_id
        self.interval = interval
        self.cancel = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if self.tasks.heartbeat(self.run_id):
                    self.cancel.set()
            except Exception:  # a database hiccup must not kill the run; the next beat tries again
                get_logger(run_id=self.run_id).warning("heartbeat failed", exc_info=True)


@dataclass
class _Outcome:
    status: Status
    reason: str | None = None
    agent: AgentResult | None = None
    tests_passed: bool | None = None
    agent_seconds: float | None = None
    exit_code: int | None = None


def _binds_for(binary: str) -> list[Path]:
    """Directories an agent CLI needs visible in the sandbox: its venv and the Python it links to."""
    path = Path(binary).resolve()
    binds = [path.parent]
    for parent in Path(binary).parents:
        cfg = parent / "pyvenv.cfg"
        if cfg.exists():
            binds.append(parent)
            for line in cfg.read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "home":
                    binds.append(Path(value.strip()).parent)
            break
    if path.is_relative_to(Path.home()) or not path.is_relative_to(Path("/usr")):
        binds.append(path.parent.parent)
    return sorted({b for b in binds if b.exists()}, key=str)


async def execute_run(runtime, run_id: int) -> None:
    """Run one attempt end to end. Safe to call twice: a run that already started is left alone."""
    tasks = TaskService(runtime.engine)
    started = tasks.start_run(run_id, worker=worker_name())
    if started is None:
        return
    task, run = started.task, started.run
    log = get_logger(task_id=task.id, run_id=run.id, repo=task.repo_full_name)
    gh = runtime.github.installation_client(task.installation_id)
    identity = await runtime.github.identity()
    report = Reporter(gh, tasks, identity=identity, public_url=runtime.settings.public_url)
    secrets = list(runtime.settings.secret_values())
    sink = LogSink(runtime.engine, run.id, secrets=secrets)
    workspace_root = Path(runtime.settings.effective_workspace_dir) / f"run-{run.id}"
    outcome = _Outcome(Status.FAILED, "the run ended unexpectedly")
    try:
        with Heartbeat(tasks, run.id) as heartbeat:
            outcome = await _run(runtime, tasks, report, task.id, run.id, sink, secrets, workspace_root,
                                 heartbeat.cancel, log)
    except RunStopped as stop:
        reason = stop.reason
        if stop.status is Status.CANCELLED:  # say who cancelled and from where, as request_cancel recorded
            reason = tasks.get(task.id).status_reason or reason
        outcome = _Outcome(stop.status, reason)
    except MissingCredentials as exc:
        outcome = _Outcome(Status.FAILED, str(exc))
    except Exception as exc:  # anything unexpected still ends the task visibly
        log.exception("run failed")
        outcome = _Outcome(Status.FAILED, f"{type(exc).__name__}: {exc}")
    finally:
        sink.write("system", f"run finished: {outcome.status.value}" + (f" ({outcome.reason})" if outcome.reason else ""))
        sink.close()
        shutil.rmtree(workspace_root, ignore_errors=True)
    usage = outcome.agent.usage if outcome.agent else None
    finished = tasks.finish(
        run.id, outcome.status, reason=outcome.reason,
        exit_code=outcome.exit_code, tests_passed=outcome.tests_passed, agent_seconds=outcome.agent_seconds,
        input_tokens=usage.input_tokens if usage else None, output_tokens=usage.output_tokens if usage else None,
        cost_usd=usage.cost_usd if usage else None,
    )
    if finished is not None:
        await report.finished(finished.task, finished.run)
        start_successor(runtime, tasks, finished.task)
    log.info("run ended", status=outcome.status.value)


def start_successor(runtime, tasks: TaskService, task) -> None:
    """With `on_busy: queue`, the next instruction on the same issue waits for this task: start it now."""
    successor = tasks.queued_successor(task)
    if successor is None:
        return
    run = tasks.latest_run(successor.id)
    if run is not None and run.status == Status.QUEUED.value:
        runtime.broker.get_actor("run_task").send(run.id)


async def _run(runtime, tasks: TaskService, report: Reporter, task_id: int, run_id: int, sink: LogSink,
               secrets: list[str], root: Path, cancel: threading.Event, log) -> _Outcome:
    settings = runtime.settings
    task, run = tasks.get(task_id), tasks.get_run(run_id)
    owner, repo = task.repo_full_name.split("/", 1)
    gh = report.gh
    await report.stage(task, run, Stage.WORKSPACE)

    repository = (await gh.rest.repos.async_get(owner, repo)).json()
    default_branch = repository["default_branch"]
    loaded = await load_repo_config(gh, owner, repo, default_branch)
    config = loaded.config
    base_branch = task.base_branch or default_branch

    # A missing provider key fails the run before any clone or setup: the reason names the key and the fix.
    agent = get_agent(task.agent or config.agent)
    credentials = _credentials_for(runtime, task)
    missing = [name for name in agent.required_credentials(task.model or config.model) if name not in credentials]
    if missing:
        raise MissingCredentials(agent.name, missing, task.installation_id)
    secrets.extend(credentials.values())
    sink.secrets.extend(credentials.values())

    # A follow-up on our PR works on the PR's branch; otherwise start from the base branch.
    work_branch = task.branch if task.pr_number and task.branch else base_branch
    token = await runtime.github.installation_token(task.installation_id)
    secrets.append(token)
    sink.secrets.append(token)
    workspace, artifacts = root / "workspace", root / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    sink.write("system", f"cloning {task.repo_full_name}@{work_branch}")
    start_sha = await asyncio.to_thread(clone, repository["clone_url"], work_branch, token, workspace)
    tasks.update(task.id, base_branch=base_branch, base_sha=task.base_sha or start_sha, head_sha=start_sha)

    sandbox = select_sandbox(settings)
    timeout_s = float(config.max_runtime_minutes) * 60
    if settings.run_time_limit_seconds:
        timeout_s = min(timeout_s, settings.run_time_limit_seconds)
    limit_text = f"{config.max_runtime_minutes} minutes" if timeout_s == config.max_runtime_minutes * 60 \
        else f"{timeout_s:g} seconds (the server's limit)"
    deadline = asyncio.get_running_loop().time() + timeout_s

    def remaining() -> float:
        return max(1.0, deadline - asyncio.get_running_loop().time())

    def on_output(stream: str, line: str) -> None:
        sink.write(stream, line)

    async def in_sandbox(argv, env=None, *, writable=True, binds=()) -> object:
        spec = SandboxSpec(
            argv=list(argv), env=dict(env or {}), workspace=workspace, extra_ro_binds=list(binds),
            writable_binds=[artifacts], timeout_s=remaining(), workspace_readonly=not writable,
        )
        result = await asyncio.to_thread(sandbox.run, spec, on_output=on_output, cancel=cancel)
        if result.cancelled:
            raise RunStopped(Status.CANCELLED, "cancelled on request")
        if result.timed_out:
            raise RunStopped(Status.TIMED_OUT, f"took longer than {limit_text}")
        return result

    for command in config.setup:
        sink.write("system", f"setup: {command}")
        result = await in_sandbox(["sh", "-c", command])
        if result.exit_code != 0:
            return _Outcome(Status.FAILED, f"setup command `{command}` exited with {result.exit_code}",
                            exit_code=result.exit_code)

    # The agent.
    await report.stage(task, run, Stage.AGENT)
    context = await issue_context.gather(gh, owner, repo, task, loaded, runtime.engine)
    # The agent sees the workspace where the sandbox mounts it (e.g. /workspace under bubblewrap).
    seen_workspace = Path(sandbox.workspace_path(SandboxSpec(argv=[], workspace=workspace)))
    request = AgentRequest(
        prompt=build_prompt(context), model=task.model or config.model, plan_mode=task.mode == "plan",
        config=config, credentials=credentials, workspace=seen_workspace, artifacts_dir=artifacts,
    )
    invocation = agent.prepare(request)
    for relative, content in invocation.files.items():
        target = artifacts / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    binary = shutil.which(invocation.argv[0]) or invocation.argv[0]
    stdout_lines: list[str] = []
    stderr_lines: list[str] = []

    def capture(stream: str, line: str) -> None:
        (stdout_lines if stream == "stdout" else stderr_lines).append(line)
        sink.write(stream, line)

    spec = SandboxSpec(
        argv=invocation.argv, env=invocation.env, workspace=workspace,
        extra_ro_binds=_binds_for(binary) if os.path.isabs(binary) else [], writable_binds=[artifacts],
        timeout_s=remaining(), workspace_readonly=not invocation.workspace_writable, stdin=invocation.stdin,
    )
    agent_result_raw = await asyncio.to_thread(sandbox.run, spec, on_output=capture, cancel=cancel)
    if agent_result_raw.cancelled:
        raise RunStopped(Status.CANCELLED, "cancelled on request")
    if agent_result_raw.timed_out:
        raise RunStopped(Status.TIMED_OUT, f"took longer than {limit_text}")
    # The summary goes into the commit message, PR body and comments: no key may ride along with it.
    agent_result = redact(agent.parse_result(request, agent_result_raw.exit_code, "\n".join(stdout_lines),
                                             "\n".join(stderr_lines)), secrets)
    agent_seconds = agent_result_raw.duration_s
    tasks.update_run(run.id, agent_seconds=agent_seconds,
                     input_tokens=agent_result.usage.input_tokens, output_tokens=agent_result.usage.output_tokens,
                     cost_usd=agent_result.usage.cost_usd)
    _save_artifact(runtime, run.id, "transcript", agent_result.transcript, secrets)
    outcome = _Outcome(Status.SUCCEEDED, agent=agent_result, agent_seconds=agent_seconds,
                       exit_code=agent_result_raw.exit_code)
    if not agent_result.success:
        outcome.status, outcome.reason = Status.FAILED, f"the agent reported failure: {agent_result.summary}"[:2000]
        return outcome

    if task.mode == "plan":
        plan = agent_result.plan or agent_result.summary
        _save_artifact(runtime, run.id, "plan", plan, secrets)
        await report.plan(task, plan)
        return outcome

    # Commit what the agent changed, through the API so the commit is the bot's and Verified.
    await report.stage(task, run, Stage.COMMIT)
    try:
        changes = await asyncio.to_thread(collect_changes, workspace, start_sha)
    except ChangesRefused as exc:
        return _Outcome(Status.NEEDS_ATTENTION, str(exc), agent=agent_result, agent_seconds=agent_seconds)
    _save_artifact(runtime, run.id, "diff", changes.diff, secrets)
    if not changes.files:
        await report.no_changes(task, run, agent_result.summary)
        outcome.reason = "no changes"
        return outcome

    parent = start_sha
    if not task.pr_number:
        head_now = await gitdata.branch_head(gh, owner, repo, base_branch)
        if head_now and head_now != start_sha:
            sink.write("system", f"{base_branch} moved to {head_now[:7]} while the agent worked; rebasing")
            if not await asyncio.to_thread(_rebase, workspace, token, base_branch, start_sha):
                return _Outcome(Status.NEEDS_ATTENTION,
                                f"`{base_branch}` moved while the agent worked and its changes no longer apply "
                                f"cleanly. Retry with `{config.command_prefix} retry` to start from the new head.",
                                agent=agent_result, agent_seconds=agent_seconds)
            parent = head_now
            changes = await asyncio.to_thread(collect_changes, workspace, head_now)

    message = _commit_message(task, agent_result)
    commit_sha = await gitdata.create_commit(gh, owner, repo, parent_sha=parent, changes=changes.files,
                                             message=message)
    if task.pr_number and task.branch:
        try:
            await gitdata.move_branch(gh, owner, repo, task.branch, commit_sha)
        except gitdata.BranchMoved:
            return _Outcome(Status.NEEDS_ATTENTION,
                            f"`{task.branch}` received other commits while the agent worked; nothing was pushed.",
                            agent=agent_result, agent_seconds=agent_seconds)
        branch = task.branch
    else:
        branch = await gitdata.create_branch(
            gh, owner, repo, gitdata.branch_name(config.branch_prefix, task.issue_number, task.title), commit_sha)
    tasks.update(task.id, branch=branch, head_sha=commit_sha)
    sink.write("system", f"committed {commit_sha[:7]} to {branch} ({len(changes.files)} files)")
    task = tasks.get(task.id)
    await report.open_or_update_pr(task, run, [c.path for c in changes.files], agent_result)

    if config.test:
        await report.stage(task, run, Stage.TESTS)
        sink.write("system", f"tests: {config.test}")
        result = await in_sandbox(["sh", "-c", config.test])
        outcome.tests_passed = result.exit_code == 0
        tasks.update_run(run.id, tests_passed=outcome.tests_passed)
    task = tasks.get(task.id)
    ready = outcome.tests_passed is not False
    await report.conclude_pr(task, tasks.get_run(run.id), ready=ready,
                             reason=None if ready else f"tests failed (`{config.test}`)")
    if not ready:
        outcome.reason = f"tests failed (`{config.test}`); the pull request stays a draft"
    return outcome


def _credentials_for(runtime, task) -> dict[str, str]:
    from app.credentials import CredentialStore, load_keyring

    store = CredentialStore(runtime.engine, load_keyring(runtime.settings))
    return store.get_env(task.installation_id, task.repo_full_name)


def _save_artifact(runtime, run_id: int, kind: str, content: str | None, secrets: list[str]) -> None:
    if not content:
        return
    from app.logs import scrub

    with session_scope(runtime.engine) as session:
        session.add(Artifact(run_id=run_id, kind=kind, content=scrub(content, secrets)))


def _commit_message(task, result: AgentResult) -> str:
    subject = (task.title or task.instruction or f"issue #{task.issue_number}").splitlines()[0][:60]
    body = (result.summary or "").strip()[:4000]
    trailer = f"Co-authored-by: {task.requester} <{task.requester}@users.noreply.github.com>"
    ref = f"Task #{task.issue_number}" if not task.is_pull_request else f"Follow-up on #{task.issue_number}"
    return f"{subject}\n\n{body}\n\n{ref}\n\n{trailer}\n" if body else f"{subject}\n\n{ref}\n\n{trailer}\n"


def _rebase(workspace: Path, token: str, base_branch: str, start_sha: str) -> bool:
    """Replay the agent's working-tree changes onto the base branch's new head; False on conflict."""
    from app.runners.workspace import fetch

    git = ["git", "-C", str(workspace), "-c", "user.name=draftsmith", "-c", "user.email=draftsmith@localhost"]
    subprocess.run([*git, "add", "-A"], check=True, capture_output=True)
    subprocess.run([*git, "commit", "-q", "--no-verify", "-m", "agent changes"], check=True, capture_output=True)
    new_head = fetch(workspace, base_branch, token)
    done = subprocess.run([*git, "rebase", "-q", "--onto", new_head, start_sha], capture_output=True)
    if done.returncode != 0:
        subprocess.run([*git, "rebase", "--abort"], capture_output=True)
        return False
    # Leave the rebased changes uncommitted on top of the new head, as collect_changes expects.
    subprocess.run([*git, "reset", "-q", "--soft", new_head], check=True, capture_output=True)
    subprocess.run([*git, "reset", "-q"], check=True, capture_output=True)
    return True


async def recover_dead_runs(runtime, older_than: timedelta | None = None) -> int:
    """Fail (or re-queue once) runs whose worker stopped beating; report it. Returns how many."""
    tasks = TaskService(runtime.engine)
    older_than = older_than or timedelta(seconds=runtime.settings.heartbeat_timeout_seconds)
    recovered = 0
    for run in tasks.dead_runs(older_than):
        finished = tasks.finish(run.id, Status.FAILED, reason="the worker running this task stopped responding")
        if finished is None:
            continue
        recovered += 1
        task = finished.task
        gh = runtime.github.installation_client(task.installation_id)
        report = Reporter(gh, tasks, identity=await runtime.github.identity(), public_url=runtime.settings.public_url)
        if runtime.settings.requeue_dead_runs and run.attempt == 1:
            again = tasks.retry(task.id)
            await report.requeued(again.task, again.run)
            runtime.broker.get_actor("run_task").send(again.run.id)
        else:
            await report.finished(finished.task, finished.run)
    return recovered
