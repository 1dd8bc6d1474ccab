"""The agent container of a Kubernetes run (`draftsmith kubernetes-agent`): run the agent, then the tests, as asked.

This container runs as a user of its own with the provider keys and nothing else of the run's: not the
payload, not the callback credential, not the clone token, and no view of the runner container's processes
or volume. It waits for the runner's request in the shared hand-off directory (app.engines.kubernetes.handoff),
takes it (the file and its key gone before the agent starts), runs the agent CLI on the shared checkout,
stops everything the agent left running, and answers, signed. When the runner asks, it runs the repository's
tests the same way, with a fresh HOME, and answers again. It reports nothing to the app itself: whatever the
agent does here, the runner decides what the run's result says.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.agents.base import AgentRequest, MissingCredentials
from app.agents.registry import UnknownAgent, get_agent
from app.engines.actions.runner import CREDENTIAL_NAMES, agent_environment, prepare_agent, run_agent
from app.engines.kubernetes import handoff as handoff_files
from app.engines.kubernetes.handoff import Handoff, LogWriter
from app.engines.kubernetes.manifests import WORKSPACE
from app.engines.kubernetes.pod import AGENT_DIR, HANDOFF_DIR, SHARED_REPO, WORKSPACE_VAR

# The runner clones and copies the checkout within the Job's set-up margin; this long is plenty.
REQUEST_WAIT_SECONDS = 900
_PR_SET_DUMPABLE, _PR_SET_CHILD_SUBREAPER = 4, 36
# The checkout's files belong to the runner's user: git refuses such a repository unless told it is safe.
_GIT_SAFE_ENV = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"}


def _prctl(option: int, value: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def guard_this_process() -> None:
    """Orphans of the agent become this process's children (so `stop_leftovers` finds them all), and the
    agent, though the same user, may not ptrace this process or read its memory (where the key is)."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    _prctl(_PR_SET_DUMPABLE, 0)


def _children() -> dict[int, list[tuple[int, str]]]:
    found: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError, IndexError):
            continue
        found.setdefault(int(ppid), []).append((int(entry.name), state))
    return found


def stop_leftovers() -> None:
    """Kill every process the agent (or the tests) left behind, daemons included, and reap them."""
    for _ in range(200):
        children, alive, todo = _children(), [], [os.getpid()]
        while todo:
            for pid, state in children.get(todo.pop(), []):
                todo.append(pid)
                if state != "Z":
                    alive.append(pid)
        for pid in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if not alive:
            return
        time.sleep(0.05)


async def serve(environ: Mapping[str, str]) -> int:
    """Do what the runner asks of this container; 0 once done (or told to stop), 1 if no request came."""
    root = Path(environ.get(WORKSPACE_VAR) or WORKSPACE)
    handoff = Handoff(root / HANDOFF_DIR)
    taken = await handoff.wait(handoff.take_request, REQUEST_WAIT_SECONDS)
    if taken is None:
        if handoff.stopped():
            return 0
        print("draftsmith kubernetes-agent: no request from the runner came", flush=True)
        return 1
    request, key = taken
    guard_this_process()
    place = root / AGENT_DIR
    for directory in ("artifacts", "home", "tmp"):
        (place / directory).mkdir(parents=True, exist_ok=True)
    log = LogWriter(handoff)
    try:
        try:
            answer = await _run_agent(request, environ, root / SHARED_REPO, place, log)
        except (UnknownAgent, MissingCredentials, ValueError) as exc:
            answer = {"error": str(exc), "exit_code": None}
        finally:
            stop_leftovers()
        # Anything the agent put here is not the runner's: the runner writes these after this answer.
        handoff.discard(handoff_files.TESTS, handoff_files.TESTS_DONE)
        handoff.write(handoff_files.AGENT_DONE, answer, key)
        tests = await handoff.wait(lambda: handoff.read(handoff_files.TESTS, key), None)
        if tests and tests.get("command"):
            # A fresh HOME and TMPDIR: nothing the agent left outside the checkout decides how the tests go.
            home = _fresh(place / "tests-home")
            env = {**agent_environment(environ, {"HOME": str(home), "TMPDIR": str(home)}), **_GIT_SAFE_ENV}
            try:
                outcome = await run_agent(["sh", "-c", str(tests["command"])], env, root / SHARED_REPO, None, log,
                                          tests.get("time_limit_seconds"))
            finally:
                stop_leftovers()
            handoff.write(handoff_files.TESTS_DONE, {"exit_code": outcome.exit_code, "timed_out": outcome.timed_out},
                          key)
    finally:
        log.close()
    return 0


def _fresh(path: Path) -> Path:
    if path.is_symlink() or path.is_file():
        path.unlink()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    return path


async def _run_agent(request: dict[str, Any], environ: Mapping[str, str], workspace: Path, place: Path,
                     log: LogWriter) -> dict[str, Any]:
    agent = get_agent(str(request.get("agent") or "command"))
    credentials = {name: environ[name] for name in CREDENTIAL_NAMES if environ.get(name)}
    agent_request = AgentRequest(prompt=str(request.get("prompt") or ""), model=request.get("model"), plan_mode=False,
                                 config=dict(request.get("options") or {}), credentials=credentials,
                                 workspace=workspace, artifacts_dir=place / "artifacts")
    invocation, env = prepare_agent(agent, agent_request, environ, place / "home", _GIT_SAFE_ENV)
    outcome = await run_agent(invocation.argv, env, invocation.cwd or workspace, invocation.stdin, log,
                              request.get("time_limit_seconds"))
    if outcome.exit_code is None and outcome.error:
        return {"error": outcome.error, "exit_code": None}
    stop_leftovers()  # before parse_result reads what the agent wrote, so nothing changes it meanwhile
    parsed = agent.parse_result(agent_request, outcome.exit_code, outcome.stdout, outcome.stderr)
    return {"exit_code": outcome.exit_code, "timed_out": outcome.timed_out, "seconds": outcome.seconds,
            "success": parsed.success, "summary": parsed.summary,
            "usage": {"input_tokens": parsed.usage.input_tokens, "output_tokens": parsed.usage.output_tokens,
                      "cost_usd": parsed.usage.cost_usd}}
