"""Kubernetes as the execution engine: each run a Job in the operator's cluster, reporting as an Actions run.

The pod's runner container runs `draftsmith kubernetes-run` (app.engines.kubernetes.pod): it clones with a
read-only token for this one repository, has its agent container run the agent as another user, and reports
through the Actions runner's callbacks with a single-use credential. The app commits, opens the PR and writes the check run from that report (the Actions engine's
RunEvents), so users see the same thing whichever engine ran. Here: create the run's objects, follow its
pod's log into the run's log, and end the run when the cluster says its pod failed or never started.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

from app.agents.base import BASE_URL_VARS, MissingCredentials
from app.agents.prompt import build_prompt
from app.agents.registry import UnknownAgent, get_agent
from app.egress.policy import EgressPolicy, Endpoint
from app.engines import context as issue_context
from app.engines import lifecycle
from app.engines.actions import callback_tokens
from app.engines.actions import dispatch as actions
from app.engines.actions.engine import finish, heartbeat_interval, public_base_url
from app.engines.git.source import READ_CONTENTS
from app.engines.kubernetes import manifests, pod as pod_side
from app.engines.kubernetes.cluster import Cluster, describe, job_outcome
from app.engines.logsink import LogSink
from app.engines.publish import Outcome
from app.engines.sandbox.network import model_endpoints
from app.github.report import Reporter, Stage
from app.logs import get_logger, scrub
from app.models import utcnow
from app.tasks.service import TaskService
from app.tasks.states import Status, is_terminal

WORKER = "kubernetes"  # Run.worker of a run whose pod the cluster runs
_OPTION_KEYS = ("command", "allowed_tools", "max_turns", "max_cost_usd")
LAST_LINES = 20
# After the pod ended well, its result is normally in already (the runner exits 0 only once it was taken).
RESULT_GRACE_SECONDS = 30


def pod_settings(settings) -> manifests.PodSettings:
    resources = settings.kubernetes_resource_limits
    return manifests.PodSettings(
        namespace=settings.kubernetes_namespace, image=settings.kubernetes_image or "",
        runtime_class=settings.kubernetes_runtime_class, node_selector=settings.kubernetes_node_labels,
        cpu=resources.get("cpu", "1"), memory=resources.get("memory", "2Gi"),
        workspace_size=resources.get("ephemeral-storage", "4Gi"), ttl_seconds=settings.kubernetes_ttl_seconds)


def egress_for(settings, config, endpoints: list[Endpoint], github_origin: str) -> list[dict]:
    """The run's NetworkPolicy egress: the egress policy of a sandbox run, plus the app and GitHub's git host."""
    policy = EgressPolicy(model_endpoints=tuple(endpoints), repository_entries=tuple(config.network.allow),
                          operator_entries=tuple(settings.egress_allow_entries), network_off=not config.network.enabled)
    always = [Endpoint.from_url(public_base_url(settings)), Endpoint.from_url(github_origin)]
    proxy_url = settings.kubernetes_egress_proxy
    proxy = Endpoint.from_url(proxy_url, operator_set=True) if proxy_url else None
    return manifests.egress_rules(policy, always=always, proxy=proxy)


def _proxy_env(settings) -> dict[str, str]:
    proxy = settings.kubernetes_egress_proxy
    if not proxy:
        return {}
    return {"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy, "https_proxy": proxy}


async def start(runtime, tasks: TaskService, report: Reporter, task_id: int, run_id: int,
                cluster: Cluster) -> tuple[Outcome | None, list[str]]:
    """Create the run's Secret, NetworkPolicy and Job. (None, secrets) once created; an Outcome when refused."""
    settings = runtime.settings
    task, run = tasks.get(task_id), tasks.get_run(run_id)
    owner, repo = task.repo_full_name.split("/", 1)
    gh = report.gh
    if not settings.kubernetes_image:
        return Outcome(Status.FAILED, "runner: kubernetes needs DRAFTSMITH_KUBERNETES_IMAGE, the image runs start "
                                      "from (`draftsmith doctor kubernetes` checks the set-up)"), []
    await report.stage(task, run, Stage.WORKSPACE)
    repo_ctx = await issue_context.repo_context(gh, task, settings)
    config, base_branch = repo_ctx.config, repo_ctx.base_branch
    if repo_ctx.refused:
        return Outcome(Status.FAILED, repo_ctx.refused), []
    try:
        agent = get_agent(task.agent or config.agent)
    except UnknownAgent as exc:
        return Outcome(Status.FAILED, str(exc)), []
    from app.credentials import CredentialStore, load_keyring

    stored = CredentialStore(runtime.engine, load_keyring(settings)).get_env(task.installation_id, task.repo_full_name)
    required = agent.required_credentials(task.model or config.model)
    missing = [name for name in required if name not in stored]
    if missing:
        return Outcome(Status.FAILED, str(MissingCredentials(agent.name, missing, task.installation_id))), []
    credentials = {k: v for k, v in stored.items() if k in required or k in BASE_URL_VARS}

    work_branch = task.branch if task.pr_number and task.branch else base_branch
    start_sha = (await gh.rest.repos.async_get_branch(owner, repo, work_branch)).json()["commit"]["sha"]
    task = tasks.update(task.id, base_branch=base_branch, base_sha=task.base_sha or start_sha, head_sha=start_sha)
    time_limit = int(repo_ctx.time_limit_seconds)
    window = timedelta(seconds=time_limit + settings.kubernetes_startup_timeout_seconds
                       + manifests.DEADLINE_MARGIN_SECONDS)
    callback_token = callback_tokens.issue(runtime.engine, run.id, window)
    context = await issue_context.gather(gh, owner, repo, task, repo_ctx.loaded, runtime.engine)
    options = {key: getattr(config, key) for key in _OPTION_KEYS if getattr(config, key, None) is not None}
    base_url = public_base_url(settings)
    payload = actions.build_dispatch_payload(
        task, run, callback_url=f"{base_url}/api/runs/{run.id}/events", callback_token=callback_token,
        oidc_audience=None, prompt=build_prompt(context), agent_options=options, time_limit_seconds=time_limit,
        test_command=config.test or None, heartbeat_seconds=heartbeat_interval(settings),
        start=(work_branch, start_sha))["client_payload"]
    # Short-lived, this repository only, read-only; the pod revokes it right after cloning.
    clone_token = await runtime.github.scoped_token(task.installation_id, task.repo_full_name, READ_CONTENTS)
    values = {manifests.PAYLOAD_KEY: json.dumps(payload), manifests.CLONE_TOKEN_KEY: clone_token, **credentials}
    secrets = [callback_token, clone_token, *credentials.values()]
    endpoints = model_endpoints(required, credentials)
    agent_env = {pod_side.WORKSPACE_VAR: manifests.WORKSPACE, **_proxy_env(settings)}
    env = {pod_side.CLONE_URL: repo_ctx.repository["clone_url"], pod_side.GITHUB_API_URL: settings.github_api_url,
           pod_side.RUNNER_DIR_VAR: manifests.RUNNER_DIR, **agent_env}
    pod = pod_settings(settings)
    objects = (
        manifests.secret(run.id, task.id, pod.namespace, values),
        manifests.network_policy(run.id, task.id, pod.namespace,
                                 egress_for(settings, config, endpoints, runtime.github.git_origin)),
        manifests.job(run.id, task.id, pod, time_limit_seconds=time_limit, secret_keys=values.keys(), env=env,
                      agent_env=agent_env),
    )
    try:
        await asyncio.to_thread(cluster.create_run, *objects)
    except Exception as exc:
        callback_tokens.revoke(runtime.engine, run.id)
        await runtime.github.revoke_token(clone_token)
        try:
            await asyncio.to_thread(cluster.delete_run, manifests.object_name(run.id))
        except Exception:
            pass
        return Outcome(Status.FAILED, f"the cluster refused the run's objects ({describe(exc)}); "
                                      f"`draftsmith doctor kubernetes` checks the set-up"), secrets
    tasks.update_run(run.id, worker=WORKER)
    await report.stage(tasks.get(task.id), tasks.get_run(run.id), Stage.AGENT)
    return None, secrets


def _never_started(settings, reason: str | None) -> str:
    why = f" ({reason})" if reason else ""
    return (f"the Kubernetes run never started: its pod was not running "
            f"{settings.kubernetes_startup_timeout_seconds:g} s after the Job was created{why}")


def _pod_failed(state, tail: list[str]) -> str:
    how = f"exit code {state.exit_code}" if state and state.exit_code is not None else "no exit code"
    if state and state.reason:
        how += f", {state.reason}"
    text = "\n".join(tail[-LAST_LINES:]) or "(no output)"
    return f"the run's pod failed ({how}) without reporting a result; its last log lines:\n```\n{text}\n```"


def follow(runtime, tasks: TaskService, run_id: int, cluster: Cluster, sink: LogSink) -> Outcome | None:
    """Wait for the run's pod, copy its log into the run's log, and say how it ended (blocking; run in a
    thread). None when the run ended otherwise (its result came in, or it was cancelled)."""
    settings = runtime.settings
    name = manifests.object_name(run_id)
    created = last_beat = time.monotonic()
    seen = 0  # log lines already copied: after a reconnect (the apiserver restarted) they are skipped
    tail: list[str] = []
    log = get_logger(run_id=run_id)
    while True:
        run = tasks.get_run(run_id)
        if run is None or is_terminal(run.status):
            return None
        try:
            state = cluster.pod(run_id)
        except Exception as exc:
            log.warning("kubernetes_unreachable", error=describe(exc))
            time.sleep(1)
            continue
        if state is None or not state.started:
            waited = time.monotonic() - created
            if waited > settings.kubernetes_startup_timeout_seconds:
                return Outcome(Status.FAILED, _never_started(settings, state.reason if state else "no pod created"))
            if time.monotonic() - last_beat > 10:  # an image pull may take minutes, and this worker lives
                tasks.heartbeat(run_id)
                last_beat = time.monotonic()
            time.sleep(0.2)
            continue
        tasks.heartbeat(run_id)
        rest: list[str] = []
        try:
            index = 0
            for line in cluster.follow_log(state.name, rest):
                index += 1
                if index <= seen:
                    continue
                seen = index
                tail = [*tail[-(LAST_LINES - 1):], scrub(line, sink.secrets)]
                sink.write("stdout", line)
        except Exception as exc:
            log.warning("pod_log_interrupted", error=describe(exc))
            time.sleep(1)
            continue
        ended = _wait_until_ended(cluster, run_id)
        if ended is None:
            continue  # the stream broke off while the pod still runs: follow it again
        if rest:  # the pod ended: its last line had no newline, and is whole
            tail = [*tail[-(LAST_LINES - 1):], scrub(rest[0], sink.secrets)]
            sink.write("stdout", rest[0])
        if ended.phase == "Succeeded":
            deadline = time.monotonic() + RESULT_GRACE_SECONDS
            while time.monotonic() < deadline:
                run = tasks.get_run(run_id)
                if run is None or is_terminal(run.status):
                    return None
                time.sleep(0.2)
            return Outcome(Status.FAILED, "the run's pod ended without reporting a result")
        run = tasks.get_run(run_id)
        if run is None or is_terminal(run.status):
            return None
        job = cluster.job(name)
        if job is not None and any(c.reason == "DeadlineExceeded" for c in (job.status.conditions or [])):
            return Outcome(Status.TIMED_OUT, "the run's Job passed its deadline (activeDeadlineSeconds)")
        return Outcome(Status.FAILED, _pod_failed(ended, tail))


def _wait_until_ended(cluster: Cluster, run_id: int, seconds: float = 10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = cluster.pod(run_id)
        except Exception:
            time.sleep(0.5)
            continue
        if state is None:
            return _Gone()
        if state.phase in ("Succeeded", "Failed"):
            return state
        time.sleep(0.2)
    return None


class _Gone:
    phase = "Failed"
    exit_code = None
    reason = "the pod was deleted"


def cleanup(runtime, cluster: Cluster) -> int:
    """Delete the Jobs of runs that are over (for clusters without ttlSecondsAfterFinished, and runs whose
    follower died) and objects orphaned before their Job owned them. Returns how many were deleted."""
    tasks = TaskService(runtime.engine)

    def is_over(run_id: int) -> bool:
        run = tasks.get_run(run_id)
        return run is None or is_terminal(run.status)

    names = cluster.finished_or_orphaned(is_over)
    for name in names:
        cluster.delete_run(name)
    return len(names)


class KubernetesEngine:
    """Runs go to a Job in the configured namespace; callbacks report the result, the cluster the rest."""

    name = "kubernetes"

    async def run(self, runtime, tasks: TaskService, task, run) -> None:
        report = await lifecycle.reporter(runtime, tasks, task.installation_id)
        log = get_logger(task_id=task.id, run_id=run.id)
        cluster = Cluster(runtime.settings)
        secrets = list(runtime.settings.secret_values())
        try:
            try:
                await asyncio.to_thread(cleanup, runtime, cluster)
            except Exception as exc:  # a failed sweep must not keep this run from starting
                log.warning("kubernetes_cleanup_failed", error=describe(exc))
            try:
                refused, run_secrets = await start(runtime, tasks, report, task.id, run.id, cluster)
            except Exception as exc:
                log.exception("kubernetes run did not start")
                refused, run_secrets = Outcome(Status.FAILED, f"{type(exc).__name__}: {exc}"), []
            if refused is not None:
                await finish(runtime, tasks, report, run.id, refused)
                return
            with LogSink(runtime.engine, run.id, secrets=[*secrets, *run_secrets]) as sink:
                try:
                    outcome = await asyncio.to_thread(follow, runtime, tasks, run.id, cluster, sink)
                except Exception as exc:  # the run must still end visibly
                    log.exception("following the run's pod failed")
                    outcome = Outcome(Status.FAILED, f"{type(exc).__name__}: {exc}")
            if outcome is not None:
                report = await lifecycle.reporter(runtime, tasks, task.installation_id)
                await finish(runtime, tasks, report, run.id, outcome)
            try:
                await asyncio.to_thread(cluster.delete_run, manifests.object_name(run.id))
            except Exception as exc:  # the next run's cleanup sweep deletes it
                log.warning("kubernetes_delete_failed", error=describe(exc))
        finally:
            cluster.close()

    async def cancel(self, runtime, gh, task, run) -> None:
        """Delete the Job in the foreground (its pod stops, its Secret and NetworkPolicy go), end the run now."""
        tasks = TaskService(runtime.engine)
        report = Reporter.for_runtime(runtime, gh, tasks, await runtime.github.identity())
        cluster = Cluster(runtime.settings)
        try:
            await asyncio.to_thread(cluster.delete_run, manifests.object_name(run.id))
        finally:
            cluster.close()
        await finish(runtime, tasks, report, run.id,
                     Outcome(Status.CANCELLED, task.status_reason or "cancelled on request"))

    async def check_on(self, runtime, tasks: TaskService, task, run) -> bool:
        """The run went quiet: ask the cluster about its Job before calling it dead. Returns whether it was ended."""
        cluster = Cluster(runtime.settings)
        name = manifests.object_name(run.id)
        try:
            try:
                job = await asyncio.to_thread(cluster.job, name)
                state = await asyncio.to_thread(cluster.pod, run.id)
            except Exception as exc:  # the cluster cannot say now: ask again later rather than guess
                get_logger(task_id=task.id, run_id=run.id).warning("kubernetes_unknown", error=describe(exc))
                tasks.heartbeat(run.id)
                return False
            ended = job_outcome(job)
            if ended is None and state is not None and state.phase in ("Succeeded", "Failed"):
                ended = "succeeded" if state.phase == "Succeeded" else "failed"  # the runner container ended
            outcome = None
            if job is None:
                outcome = Outcome(Status.FAILED, "the run's Job is gone from the cluster (deleted by someone, or by "
                                                 "its TTL) and it reported no result")
            elif ended is not None:
                tail = []
                if state is not None:
                    try:
                        tail = await asyncio.to_thread(cluster.log_tail, state.name, LAST_LINES)
                        tail = [scrub(line, runtime.settings.secret_values()) for line in tail]
                    except Exception:
                        tail = []
                outcome = Outcome(Status.FAILED, _pod_failed(state, tail) if ended == "failed"
                                  else "the run's pod ended without reporting a result")
            elif (state is None or not state.started) and run.started_at and utcnow() - run.started_at > timedelta(
                    seconds=runtime.settings.kubernetes_startup_timeout_seconds):
                outcome = Outcome(Status.FAILED, _never_started(runtime.settings, state.reason if state else None))
            if outcome is None:
                tasks.heartbeat(run.id)  # the cluster still runs it (or is about to)
                return False
            report = await lifecycle.reporter(runtime, tasks, task.installation_id)
            await finish(runtime, tasks, report, run.id, outcome)
            await asyncio.to_thread(cluster.delete_run, name)
            return True
        finally:
            cluster.close()
