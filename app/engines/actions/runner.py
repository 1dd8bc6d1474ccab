"""The runner side of an Actions run: read the dispatch, run the agent in the checkout, report back to Draftsmith."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.agents.base import (BASE_URL_VARS, PROVIDER_KEYS, Agent, AgentRequest, Invocation, MissingCredentials,
                             Usage, check_credentials)
from app.agents.registry import UnknownAgent, get_agent
from app.engines.actions import agent_user
from app.logs import scrub

# Credentials the Actions runner gives every step: the agent must not see them (it could mint OIDC tokens,
# report for the run itself, or use the job's token), even though the VM is its sandbox.
_RUNNER_SECRETS = (
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_RUNTIME_URL",
    "ACTIONS_RESULTS_URL",
    "ACTIONS_CACHE_URL",
    "GITHUB_TOKEN",
)
CREDENTIAL_NAMES = tuple(dict.fromkeys([*PROVIDER_KEYS.values(), *BASE_URL_VARS]))
_GIT_SAFE = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "safe.directory=*"]
OUTPUT_KEEP = 1_000_000  # characters of stdout/stderr kept for the adapter's parse_result


class ActionsRunError(Exception):
    """The run cannot start (bad event file, missing callback); the message is for the job log."""


@dataclass(frozen=True)
class RunSpec:
    """What to run, from a `draftsmith-run` repository_dispatch or a manual workflow_dispatch."""

    agent: str
    model: str | None
    prompt: str
    options: dict[str, Any]
    base_sha: str | None
    run_id: int | None = None
    task_id: int | None = None
    callback_url: str | None = None
    callback_token: str | None = None
    oidc_audience: str | None = None
    time_limit_seconds: float | None = None
    test_command: str | None = None
    heartbeat_seconds: float | None = None

    @classmethod
    def from_event(cls, event: Mapping[str, Any], environ: Mapping[str, str]) -> RunSpec:
        payload = event.get("client_payload")
        if isinstance(payload, Mapping) and payload:
            agent = payload.get("agent") or {}
            callback = payload.get("callback") or {}
            base = payload.get("base") or {}
            run = payload.get("run") or {}
            if not callback.get("url"):
                raise ActionsRunError("the dispatch payload has no callback URL")
            return cls(
                agent=str(agent.get("name") or "command"),
                model=agent.get("model"),
                prompt=str(payload.get("prompt") or ""),
                options=dict(agent.get("options") or {}),
                base_sha=base.get("sha") or environ.get("GITHUB_SHA"),
                run_id=payload.get("run_id"),
                task_id=payload.get("task_id"),
                callback_url=callback["url"],
                callback_token=callback.get("token"),
                oidc_audience=callback.get("oidc_audience"),
                time_limit_seconds=run.get("time_limit_seconds"),
                test_command=run.get("test") or None,
                heartbeat_seconds=callback.get("heartbeat_seconds"),
            )
        inputs = event.get("inputs")
        if isinstance(inputs, Mapping) and inputs.get("instruction"):
            options = {"command": inputs["command"]} if inputs.get("command") else {}
            return cls(agent=str(inputs.get("agent") or "command"), model=inputs.get("model") or None,
                       prompt=str(inputs["instruction"]), options=options, base_sha=environ.get("GITHUB_SHA"))
        raise ActionsRunError("the event has neither a draftsmith-run client_payload nor workflow_dispatch inputs")


class CallbackAuth:
    """The Authorization header for callbacks: a fresh GitHub OIDC token when the job may mint one (the
    stronger proof: it names this repository), else the run's callback token from the payload."""

    def __init__(self, spec: RunSpec, environ: Mapping[str, str], http: httpx.AsyncClient) -> None:
        self.spec = spec
        self.request_url = environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")
        self.request_token = environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
        self.http = http
        self.use_oidc = bool(self.request_url and self.request_token and spec.oidc_audience)
        self._cached: tuple[str, float] | None = None

    @property
    def secrets(self) -> list[str]:
        return [s for s in (self.spec.callback_token, self.request_token, self._cached and self._cached[0]) if s]

    async def header(self) -> str:
        if self.use_oidc:
            return f"Bearer {await self._oidc_token()}"
        if self.spec.callback_token:
            return f"Bearer {self.spec.callback_token}"
        raise ActionsRunError("no callback credential: give the job `id-token: write` or send a callback token")

    def fall_back(self) -> bool:
        """After a 401 for an OIDC token (the server may not accept them), switch to the payload's token."""
        if self.use_oidc and self.spec.callback_token:
            self.use_oidc = False
            return True
        return False

    async def _oidc_token(self) -> str:
        # GitHub's tokens live about five minutes; reuse one for a minute, then ask again.
        if self._cached and time.monotonic() - self._cached[1] < 60:
            return self._cached[0]
        response = await self.http.get(
            self.request_url,
            params={"audience": self.spec.oidc_audience},
            headers={"Authorization": f"Bearer {self.request_token}", "Accept": "application/json"},
        )
        response.raise_for_status()
        token = response.json()["value"]
        self._cached = (token, time.monotonic())
        return token


class CallbackClient:
    """Posts event batches to the run's callback URL, retrying network errors and 5xx answers."""

    def __init__(self, url: str, auth: CallbackAuth, http: httpx.AsyncClient, attempts: int = 5) -> None:
        self.url = url
        self.auth = auth
        self.http = http
        self.attempts = attempts

    async def post(self, events: list[dict[str, Any]]) -> httpx.Response:
        delay = 1.0
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self.http.post(self.url, json={"events": events},
                                                headers={"Authorization": await self.auth.header()})
            except httpx.HTTPError:
                if attempt == self.attempts:
                    raise
            else:
                if response.status_code == 401 and self.auth.fall_back():
                    continue
                if response.status_code < 500 or attempt == self.attempts:
                    return response
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15)
        raise AssertionError("unreachable")


class LogBatcher:
    """Collects events and sends them every `interval` seconds or `size` events, in order; with nothing to
    send for `heartbeat` seconds it sends a heartbeat, so a silent agent does not look like a dead runner."""

    def __init__(self, client: CallbackClient | None, secrets: list[str], interval: float = 1.0, size: int = 200,
                 heartbeat: float | None = None, send_logs: bool = True) -> None:
        self.client = client
        # False where the platform collects the process's output itself (a Kubernetes pod's log): log lines
        # are printed only, and the callbacks carry progress, heartbeats and the result.
        self.send_logs = send_logs
        self.secrets = secrets
        self.interval = min(interval, heartbeat) if heartbeat else interval
        self.size = size
        self.heartbeat = heartbeat
        self._last_sent = time.monotonic()
        self._pending: list[dict[str, Any]] = []
        self._send_lock = asyncio.Lock()
        self._full = asyncio.Event()
        self.failures: list[str] = []

    def add(self, event: dict[str, Any]) -> None:
        if event.get("type") == "log":
            event = {**event, "text": scrub(event["text"], self.secrets)}
            print(event["text"], flush=True)  # the Actions job log shows the agent's output as well
            if not self.send_logs:
                return
        self._pending.append(event)
        if len(self._pending) >= self.size:
            self._full.set()

    async def flush(self) -> None:
        async with self._send_lock:
            while self._pending:
                batch, self._pending = self._pending[: self.size], self._pending[self.size:]
                if self.client is None:
                    continue
                try:
                    response = await self.client.post(batch)
                    if response.status_code >= 400:
                        self.failures.append(f"{response.status_code}: {response.text[:300]}")
                    else:
                        self._last_sent = time.monotonic()
                except httpx.HTTPError as exc:
                    self.failures.append(str(exc))

    async def run(self) -> None:
        """Flush periodically until cancelled."""
        while True:
            try:
                await asyncio.wait_for(self._full.wait(), self.interval)
            except TimeoutError:
                pass
            self._full.clear()
            if self.heartbeat and not self._pending and time.monotonic() - self._last_sent >= self.heartbeat:
                self._pending.append({"type": "heartbeat"})
            await self.flush()


@dataclass
class AgentOutcome:
    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    seconds: float = 0.0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# (spec, the runner's environment, the checkout, the provider credentials, the batcher) -> the result event.
Collect = Callable[["RunSpec", Mapping[str, str], Path, dict[str, str], "LogBatcher"], Awaitable[dict[str, Any]]]


def agent_environment(environ: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The runner's environment (toolchains from setup steps) minus runner and provider credentials, plus
    what the adapter asks for (which includes only the provider keys this agent needs)."""
    hidden = set(_RUNNER_SECRETS) | set(CREDENTIAL_NAMES)
    env = {k: v for k, v in environ.items() if k not in hidden and not k.startswith("DRAFTSMITH_")}
    env.update(extra)
    return env


async def run_agent(argv: list[str], env: dict[str, str], cwd: Path, stdin: str | None, batcher: LogBatcher,
                    time_limit: float | None) -> AgentOutcome:
    started = time.monotonic()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, env=env, start_new_session=True,  # own process group: a timeout stops all of it
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
    except OSError as exc:
        return AgentOutcome(None, error=f"could not start {argv[0]}: {exc}")
    kept = {"stdout": [], "stderr": []}

    async def pump(stream: asyncio.StreamReader, name: str) -> None:
        size = 0
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            if size < OUTPUT_KEEP:
                kept[name].append(text)
                size += len(text) + 1
            batcher.add({"type": "log", "stream": name, "text": text})

    if stdin is not None:
        process.stdin.write(stdin.encode())
        process.stdin.close()
    pumps = asyncio.gather(pump(process.stdout, "stdout"), pump(process.stderr, "stderr"))
    timed_out = False
    try:
        await asyncio.wait_for(process.wait(), time_limit)
    except TimeoutError:
        timed_out = True
        _kill_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            _kill_group(process.pid, signal.SIGKILL)
            await process.wait()
    try:
        await asyncio.wait_for(pumps, 5)  # a leftover child holding the pipes must not hang us
    except TimeoutError:
        _kill_group(process.pid, signal.SIGKILL)
    return AgentOutcome(process.returncode, "\n".join(kept["stdout"]), "\n".join(kept["stderr"]), timed_out,
                        time.monotonic() - started)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):  # the agent's user's processes: stop_everything gets them
        pass


def compute_patch(checkout: Path, tree: Path, base: str | None) -> str:
    """Everything the agent changed in `tree` since `base` (its own commits included), as `git diff --binary`.

    Git runs with the checkout's `.git`, which the agent never had, and a throwaway index: a config,
    filter or diff driver the agent wrote into its own copy is never read.
    """
    with tempfile.TemporaryDirectory(prefix="draftsmith-index-") as scratch:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": scratch, "GIT_CONFIG_NOSYSTEM": "1",
               "GIT_CONFIG_GLOBAL": os.devnull, "GIT_ATTR_NOSYSTEM": "1", "GIT_INDEX_FILE": f"{scratch}/index",
               "LANG": "C"}
        git = ["git", *_GIT_SAFE, f"--git-dir={checkout / '.git'}", f"--work-tree={tree}"]
        subprocess.run([*git, "read-tree", base or "HEAD"], env=env, check=True, capture_output=True)
        subprocess.run([*git, "add", "-A"], env=env, check=True, capture_output=True)
        done = subprocess.run([*git, "diff", "--cached", "--binary", "--no-ext-diff", "--no-textconv", base or "HEAD"],
                              env=env, check=True, capture_output=True)
    return done.stdout.decode("utf-8", errors="surrogateescape")


async def execute(environ: Mapping[str, str], *, event_path: Path | None = None, workspace: Path | None = None,
                  http: httpx.AsyncClient | None = None, send_logs: bool = True, collect: Collect | None = None) -> int:
    """Run one Actions run end to end; returns the process exit code (0 once the result was delivered).

    `collect` runs the agent and the tests and returns the result event; by default here, as another user.
    The Kubernetes pod passes its own, which hands the work to the pod's agent container.
    """
    event_file = event_path or (Path(environ["GITHUB_EVENT_PATH"]) if environ.get("GITHUB_EVENT_PATH") else None)
    if event_file is None:
        raise ActionsRunError("GITHUB_EVENT_PATH is not set: run this inside GitHub Actions or pass --event-path")
    spec = RunSpec.from_event(json.loads(event_file.read_text()), environ)
    with contextlib.suppress(OSError):
        event_file.chmod(0o600)  # it holds the run's callback credential; the agent's user must not read it
    workspace = (workspace or Path(environ.get("GITHUB_WORKSPACE") or os.getcwd())).resolve()
    owns_http = http is None
    http = http or httpx.AsyncClient(timeout=httpx.Timeout(60, connect=15))
    try:
        return await _execute(spec, environ, workspace, http, send_logs, collect or _run_and_collect)
    finally:
        if owns_http:
            await http.aclose()


async def _execute(spec: RunSpec, environ: Mapping[str, str], workspace: Path, http: httpx.AsyncClient,
                   send_logs: bool, collect: Collect) -> int:
    credentials = {name: environ[name] for name in CREDENTIAL_NAMES if environ.get(name)}
    auth = CallbackAuth(spec, environ, http)
    client = CallbackClient(spec.callback_url, auth, http) if spec.callback_url else None
    secrets = [*credentials.values(), *auth.secrets, *(environ.get(n, "") for n in _RUNNER_SECRETS)]
    batcher = LogBatcher(client, [s for s in secrets if s], heartbeat=spec.heartbeat_seconds, send_logs=send_logs)
    flusher = asyncio.create_task(batcher.run())
    result: dict[str, Any]
    try:
        batcher.add({"type": "progress", "stage": "agent_started", "detail": spec.agent})
        result = await collect(spec, environ, workspace, credentials, batcher)
    except MissingCredentials as exc:
        # On Actions the keys are the workflow's secrets, not keys stored in Draftsmith.
        names = ", ".join(exc.names)
        message = (f"The {exc.agent} agent needs {names}, which this workflow run does not have. Add it as an "
                   f"Actions secret of the repository or organisation and pass it in the `env:` of the "
                   f"`draftsmith actions-run` step in .github/workflows/draftsmith.yml.")
        result = {"type": "result", "success": False, "summary": "", "error": message, "exit_code": None}
        batcher.add({"type": "log", "stream": "system", "text": message})
    except (UnknownAgent, ValueError, agent_user.AgentUserUnavailable) as exc:
        # Explain the refusal; the adapters' messages say what to set (here: a workflow secret).
        result = {"type": "result", "success": False, "summary": "", "error": str(exc), "exit_code": None}
        batcher.add({"type": "log", "stream": "system", "text": str(exc)})
    except Exception as exc:  # report anything else too: a run must never end silently
        message = f"draftsmith actions-run failed: {type(exc).__name__}: {exc}"
        result = {"type": "result", "success": False, "summary": "", "error": message, "exit_code": None}
        batcher.add({"type": "log", "stream": "system", "text": message})
    finally:
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)
    await batcher.flush()
    result["summary"] = scrub(result.get("summary") or "", batcher.secrets)
    if result.get("error"):
        result["error"] = scrub(result["error"], batcher.secrets)
    if client is None:
        return _report_locally(result, environ)
    response = await client.post([result])
    if response.status_code >= 400:
        print(f"Draftsmith refused the result ({response.status_code}): {response.text[:500]}", file=sys.stderr)
        return 1
    if batcher.failures:
        print(f"Some log batches were not delivered: {batcher.failures[:3]}", file=sys.stderr)
    return 0


async def _run_and_collect(spec: RunSpec, environ: Mapping[str, str], workspace: Path, credentials: dict[str, str],
                           batcher: LogBatcher) -> dict[str, Any]:
    started = time.monotonic()
    agent = get_agent(spec.agent)
    user = agent_user.resolve(environ)
    if user is None:
        batcher.add({"type": "log", "stream": "system", "text": (
            f"{agent_user.AGENT_USER_VARIABLE}=shared: the agent runs as the runner's own user and could read "
            f"this job's credentials")})
    place = agent_user.AgentPlace.create(workspace)
    try:
        request = AgentRequest(prompt=spec.prompt, model=spec.model, plan_mode=False, config=spec.options,
                               credentials=credentials, workspace=place.workspace, artifacts_dir=place.artifacts)
        invocation, env = prepare_agent(agent, request, environ, place.home)
        outcome = await _as_agent(user, place, invocation.argv, env, invocation.cwd or place.workspace,
                                  invocation.stdin, batcher, spec.time_limit_seconds)
        if outcome.exit_code is None and outcome.error:
            return {"type": "result", "success": False, "summary": "", "error": outcome.error, "exit_code": None}
        batcher.add({"type": "progress", "stage": "agent_finished", "detail": f"exit code {outcome.exit_code}"})
        parsed = agent.parse_result(request, outcome.exit_code, outcome.stdout, outcome.stderr)
        batcher.add({"type": "progress", "stage": "collecting_changes"})
        # Before the tests, so what they leave behind (caches, build output) is not taken for the agent's work.
        patch = compute_patch(workspace, place.workspace, spec.base_sha)
        error = agent_error(spec, parsed.success, outcome.exit_code, outcome.timed_out)
        tests_passed = None
        if error is None and patch and spec.test_command:
            remaining = spec.time_limit_seconds - (time.monotonic() - started) if spec.time_limit_seconds else None
            tests_passed = await run_tests(spec.test_command, agent_environment(environ, {"HOME": str(place.home)}),
                                           place, user, batcher,
                                           max(1.0, remaining) if remaining is not None else None)
    finally:
        place.remove(user)
    return result_event(parsed.success, parsed.summary, parsed.usage, outcome, patch, tests_passed, error)


def agent_error(spec: RunSpec, success: bool, exit_code: int | None, timed_out: bool) -> str | None:
    """Why the agent's part of the run failed, or None."""
    if timed_out:
        return f"the agent ran past the time limit of {spec.time_limit_seconds:.0f} s and was stopped"
    if not success:
        return f"the agent exited {exit_code}"
    return None


def result_event(success: bool, summary: str, usage: Usage, outcome: AgentOutcome, patch: str,
                 tests_passed: bool | None, error: str | None) -> dict[str, Any]:
    """The `result` callback event, the one the app commits and reports from."""
    return {
        "type": "result",
        "success": bool(success and not outcome.timed_out),
        "summary": summary,
        "patch": patch,
        "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                  "cost_usd": usage.cost_usd, "agent_seconds": round(outcome.seconds, 3)},
        "exit_code": outcome.exit_code,
        "tests_passed": tests_passed,
        "error": error,
    }


def prepare_agent(agent: Agent, request: AgentRequest, environ: Mapping[str, str], home: Path,
                  extra: Mapping[str, str] | None = None) -> tuple[Invocation, dict[str, str]]:
    """The agent's invocation, its files written to the artifacts dir, and its environment (`extra` added
    before the adapter's own variables), its HOME and XDG directories made. MissingCredentials first."""
    check_credentials(agent, request)
    invocation = agent.prepare(request)
    for name, content in invocation.files.items():
        target = request.artifacts_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    env = {**agent_environment(environ, {"HOME": str(home)}), **(extra or {}), **invocation.env}
    for key in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        if key in env:
            Path(env[key]).mkdir(parents=True, exist_ok=True)
    return invocation, env


async def _as_agent(user: agent_user.AgentUser | None, place: agent_user.AgentPlace, argv: list[str],
                    env: dict[str, str], cwd: Path, stdin: str | None, batcher: LogBatcher,
                    time_limit: float | None) -> AgentOutcome:
    """Run `argv` as the agent's user over its place, then hand the place back to the runner with nothing
    of the agent's still running."""
    if user is None:
        return await run_agent(argv, env, cwd, stdin, batcher, time_limit)
    user.give(place.root)
    try:
        return await run_agent(user.command(argv, env), env, cwd, stdin, batcher, time_limit)
    finally:
        user.stop_everything()
        user.take_back(place.root)


async def run_tests(command: str, env: dict[str, str], place: agent_user.AgentPlace,
                    user: agent_user.AgentUser | None, batcher: LogBatcher, time_limit: float | None) -> bool:
    """The repository's `test:` on the agent's changes, as the sandbox engine runs it; True if it passed."""
    announce_tests(batcher, command)
    outcome = await _as_agent(user, place, ["sh", "-c", command], env, place.workspace, None, batcher, time_limit)
    return tests_verdict(batcher, outcome.exit_code, outcome.timed_out)


def announce_tests(batcher: LogBatcher, command: str) -> None:
    batcher.add({"type": "progress", "stage": "tests", "detail": command})
    batcher.add({"type": "log", "stream": "system", "text": f"tests: {command}"})


def tests_verdict(batcher: LogBatcher, exit_code: int | None, timed_out: bool) -> bool:
    """Whether the tests passed, said in the run's log."""
    if timed_out:
        batcher.add({"type": "log", "stream": "system", "text": "tests: stopped at the run's time limit"})
    passed = exit_code == 0 and not timed_out
    batcher.add({"type": "log", "stream": "system", "text": f"tests: {'passed' if passed else 'failed'}"
                 + ("" if passed else f" (exit code {exit_code})")})
    return passed


def _report_locally(result: dict[str, Any], environ: Mapping[str, str]) -> int:
    """A manual try: show the result in the job summary, commit nothing."""
    patch = result.get("patch") or ""
    lines = ["## Draftsmith manual try", "", f"**Success:** {result['success']}", ""]
    if result.get("error"):
        lines += [f"**Error:** {result['error']}", ""]
    if result.get("summary"):
        lines += ["### Summary", "", result["summary"], ""]
    lines += ["### Patch", "", "```diff", patch or "(no changes)", "```", ""]
    text = "\n".join(lines)
    print(text)
    if environ.get("GITHUB_STEP_SUMMARY"):
        with open(environ["GITHUB_STEP_SUMMARY"], "a") as summary:
            summary.write(text)
    return 0 if result["success"] else 1
