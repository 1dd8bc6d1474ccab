"""One run of a task on our own workers: workspace, setup, agent and tests in the sandbox, then publish."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
from pathlib import Path

from app.agents.base import INSTALLED_MARKER, AgentNotInstalled, AgentRequest, MissingCredentials, find_binary, redact
from app.agents.installer import install_command
from app.agents.prompt import build_prompt
from app.agents.registry import get_agent
from app.github.report import Reporter, Stage
from app.logs import get_logger
from app.engines import context as issue_context
from app.engines.logsink import LogSink
from app.engines.sandbox.network import RunNetwork, build_policy, model_endpoints
from app.engines.checkpoints import Checkpoints, interval_for
from app.engines.git.branch_writer import BranchWriter
from app.engines.git.private_repo import PrivateRepo
from app.engines.git.workspace_files import commit_marker
from app.engines.publish import Outcome, publish, save_artifact
from app.engines.sandbox import SandboxSpec, select_sandbox
from app.engines.git.source import RepositorySource
from app.tasks.service import TaskService
from app.tasks.states import Status

HEARTBEAT_SECONDS = 2.0
_SAVED_WHEN = {Status.TIMED_OUT: "saved when the run timed out", Status.CANCELLED: "saved when the run was cancelled"}


class RunStopped(Exception):
    """The run ends early with a given final status (cancelled, timed out, needs attention...)."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


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
    # A CLI installed outside /usr (npm -g under a prefix, uv tool) keeps its runtime beside bin/, e.g.
    # <prefix>/lib/node_modules; /usr itself is already visible read-only in the sandbox.
    # An npm prefix's bin/ holds only a symlink into <prefix>/lib: the prefix itself must be visible.
    if not path.is_relative_to(Path("/usr")):
        binds.append(path.parent.parent)
        binds.append(Path(binary).absolute().parent.parent)
    # One `draftsmith agents install` directory is self-contained: bind it whole (bin/ holds symlinks
    # into lib/node_modules, whose packages may load siblings).
    for parent in Path(binary).parents:
        if (parent / INSTALLED_MARKER).is_file():
            binds.append(parent)
            break
    return sorted({b for b in binds if b.exists()}, key=str)


async def run_in_sandbox(runtime, tasks: TaskService, report: Reporter, task_id: int, run_id: int, sink: LogSink,
               secrets: list[str], root: Path, cancel: threading.Event, log, stack: contextlib.ExitStack) -> Outcome:
    settings = runtime.settings
    task, run = tasks.get(task_id), tasks.get_run(run_id)
    owner, repo = task.repo_full_name.split("/", 1)
    gh = report.gh
    await report.stage(task, run, Stage.WORKSPACE)

    repo_ctx = await issue_context.repo_context(gh, task, settings)
    repository, loaded, config, base_branch = repo_ctx.repository, repo_ctx.loaded, repo_ctx.config, repo_ctx.base_branch
    if repo_ctx.refused:
        return Outcome(Status.FAILED, repo_ctx.refused)

    # A missing provider key fails the run before any clone or setup: the reason names the key and the fix.
    agent = get_agent(task.agent or config.agent)
    credentials = _credentials_for(runtime, task)
    missing = [name for name in agent.required_credentials(task.model or config.model) if name not in credentials]
    if missing:
        raise MissingCredentials(agent.name, missing, task.installation_id)
    # A CLI that is not installed fails the run now, saying how to install it, not after clone and setup.
    # The docker backend runs the CLI of its image, which this worker cannot see.
    binary_name = getattr(agent, "binary", None)
    if binary_name and settings.sandbox != "docker" and find_binary(binary_name) is None:
        raise AgentNotInstalled(agent.name, binary_name, install_command(agent.name))
    secrets.extend(credentials.values())
    sink.secrets.extend(credentials.values())

    # A run works on its PR's branch (a new task's draft is opened before it starts); a plan on an issue
    # has no PR and reads the base branch.
    work_branch = task.branch if task.pr_number and task.branch else base_branch
    # The run's private repo lives beside the workspace, never inside anything a sandbox sees: after the
    # agent, every git command of the worker runs there, on the workspace's files as plain bytes.
    workspace, artifacts = root / "workspace", root / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    source = RepositorySource(runtime.github, task.installation_id, task.repo_full_name, repository["clone_url"],
                              PrivateRepo.create(root / "git"))
    sink.write("system", f"cloning {task.repo_full_name}@{work_branch}")
    start_sha = await source.fetch(work_branch)
    await asyncio.to_thread(source.private.populate_workspace, workspace, work_branch, repository["clone_url"])
    task = tasks.update(task.id, base_branch=base_branch, base_sha=task.base_sha or start_sha, head_sha=start_sha)
    writer = BranchWriter(gh, source, work_branch, start_sha, log=lambda text: sink.write("system", text))

    def take_snapshot() -> str:
        return source.private.snapshot(workspace, start_sha)

    sandbox = select_sandbox(settings)
    report.isolated = sandbox.isolated
    # Setup, agent and tests reach nothing but what this run's proxy allows: the model API, the
    # repository's network.allow and the operator's DRAFTSMITH_EGRESS_ALLOW.
    endpoints = model_endpoints(agent.required_credentials(task.model or config.model), credentials)
    network = stack.enter_context(RunNetwork(
        root / "egress", build_policy(settings, config.network, endpoints, runtime.redis_url),
        log=lambda text: sink.write("system", text), resolve=runtime.egress_resolver))
    extra_ca = settings.sandbox_ca_file.read_text() if settings.sandbox_ca_file else None
    limit_text = repo_ctx.time_limit_text
    deadline = asyncio.get_running_loop().time() + repo_ctx.time_limit_seconds

    def remaining() -> float:
        return max(1.0, deadline - asyncio.get_running_loop().time())

    def on_output(stream: str, line: str) -> None:
        sink.write(stream, line)

    async def in_sandbox(argv, env=None, *, writable=True, binds=(), stdin=None, output=on_output) -> object:
        spec = SandboxSpec(
            argv=list(argv), env=dict(env or {}), workspace=workspace, extra_ro_binds=list(binds),
            writable_binds=[artifacts], timeout_s=remaining(), workspace_readonly=not writable, stdin=stdin,
            egress=network.egress, extra_ca_pem=extra_ca,
        )
        result = await asyncio.to_thread(sandbox.run, spec, on_output=output, cancel=cancel)
        report.blocked = network.blocked()
        if result.cancelled:
            raise RunStopped(Status.CANCELLED, "cancelled on request")
        if result.timed_out:
            raise RunStopped(Status.TIMED_OUT, f"took longer than {limit_text}")
        return result

    for command in config.setup:
        sink.write("system", f"setup: {command}")
        result = await in_sandbox(["sh", "-c", command])
        if result.exit_code != 0:
            return Outcome(Status.FAILED, f"setup command `{command}` exited with {result.exit_code}",
                            exit_code=result.exit_code)

    # The agent.
    await report.stage(task, run, Stage.AGENT)
    context = await issue_context.gather(gh, owner, repo, task, loaded, runtime.engine,
                                         own_app_id=runtime.settings.github_app_id)
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

    checkpoints = Checkpoints(
        writer=writer, take_snapshot=take_snapshot, report=report, tasks=tasks, task_id=task.id, run_id=run.id,
        interval=interval_for(settings, config) if task.mode != "plan" else 0.0,
        commit_marker=lambda: commit_marker(workspace) if task.mode != "plan" else None,
        log=lambda text: sink.write("system", text))
    try:
        async with checkpoints:
            agent_result_raw = await in_sandbox(
                invocation.argv, invocation.env, writable=invocation.workspace_writable,
                binds=_binds_for(binary) if os.path.isabs(binary) else [], stdin=invocation.stdin, output=capture,
            )
    except RunStopped as stop:
        if task.mode != "plan":  # what the agent did so far stays on the branch
            await checkpoints.take(why=_SAVED_WHEN.get(stop.status, "saved when the run stopped"))
        raise
    # The summary goes into the commit message, PR body and comments: no key may ride along with it.
    agent_result = redact(agent.parse_result(request, agent_result_raw.exit_code, "\n".join(stdout_lines),
                                             "\n".join(stderr_lines)), secrets)
    agent_seconds = agent_result_raw.duration_s
    tasks.update_run(run.id, agent_seconds=agent_seconds,
                     input_tokens=agent_result.usage.input_tokens, output_tokens=agent_result.usage.output_tokens,
                     cost_usd=agent_result.usage.cost_usd)
    save_artifact(runtime.engine, run.id, "transcript", agent_result.transcript, secrets)
    outcome = Outcome(Status.SUCCEEDED, agent=agent_result, agent_seconds=agent_seconds,
                       exit_code=agent_result_raw.exit_code)
    if not agent_result.success:
        outcome.status, outcome.reason = Status.FAILED, f"the agent reported failure: {agent_result.summary}"[:2000]
        if task.mode != "plan":
            await checkpoints.take(why="saved when the agent failed")
        return outcome

    if task.mode == "plan":
        plan = agent_result.plan or agent_result.summary
        save_artifact(runtime.engine, run.id, "plan", plan, secrets)
        await report.plan(task, plan)
        return outcome

    async def run_tests() -> bool:
        result = await in_sandbox(["sh", "-c", config.test])
        return result.exit_code == 0

    published = await publish(
        engine=runtime.engine, tasks=tasks, report=report, task_id=task.id, run_id=run.id, writer=writer,
        take_snapshot=take_snapshot, config=config,
        agent_result=agent_result, log=lambda text: sink.write("system", text), secrets=secrets,
        run_tests=run_tests, agent_seconds=agent_seconds,
    )
    published.exit_code = outcome.exit_code
    return published


def _credentials_for(runtime, task) -> dict[str, str]:
    from app.credentials import CredentialStore, load_keyring

    store = CredentialStore(runtime.engine, load_keyring(runtime.settings))
    return store.get_env(task.installation_id, task.repo_full_name)
