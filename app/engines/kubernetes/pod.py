"""The runner container of a Kubernetes run (`draftsmith kubernetes-run`): clone, hand off, diff, report.

The run's Secret gives this container, and only this one, its payload (with the single-use callback
credential) and a clone token for this one repository with `contents: read`. The clone goes into this
container's own volume through the private repository code the sandbox engine uses, the token travelling
only as a git header, and the token is revoked as soon as the clone is done. The agent's container gets a
copy of the checkout in the shared workspace and its work through app.engines.kubernetes.handoff; it runs
the agent and the tests as another user and can see nothing of this container: not its processes, not its
environment, not its volume. The patch is computed here with this container's own `.git` and a throwaway
index, so nothing the agent wrote into the copy's `.git` runs here. The rest is exactly an Actions run
(`app.engines.actions.runner.execute`): progress, heartbeats and the result go to the app, which commits,
opens the PR and writes the check run. Log lines (the agent's relayed) go to this container's output; the
app follows it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from app.agents.base import Usage
from app.engines.actions import runner
from app.engines.git.private_repo import PrivateRepo
from app.engines.kubernetes import handoff as handoff_files
from app.engines.kubernetes.handoff import Handoff, LogRelay
from app.engines.kubernetes.manifests import (CLONE_TOKEN_KEY, DEADLINE_MARGIN_SECONDS, PAYLOAD_KEY, RUNNER_DIR,
                                              WORKSPACE)
from app.logs import scrub

CLONE_URL = "DRAFTSMITH_CLONE_URL"
GITHUB_API_URL = "DRAFTSMITH_GITHUB_API_URL"
WORKSPACE_VAR = "DRAFTSMITH_WORKSPACE"
RUNNER_DIR_VAR = "DRAFTSMITH_RUNNER_DIR"
# Under the shared workspace: the agent's checkout, its own files, the hand-off directory.
SHARED_REPO, AGENT_DIR, HANDOFF_DIR = "repo", "agent", "handoff"


class PodRunError(Exception):
    """The run cannot start in this pod; the message goes to the pod's log (and so to the run's log)."""


def _say(text: str) -> None:
    print(f"draftsmith: {text}", flush=True)


def clone(environ: Mapping[str, str], root: Path, payload: dict) -> Path:
    """Clone the run's start commit into `root`/repo; returns that workspace."""
    url, token = environ.get(CLONE_URL), environ.get(CLONE_TOKEN_KEY)
    base = payload.get("base") or {}
    branch, sha = base.get("ref"), base.get("sha")
    if not url or not branch:
        raise PodRunError("the run's pod has no clone URL or branch")
    _say(f"cloning {payload.get('repository')}@{branch}")
    private = PrivateRepo.create(root / "git")
    try:
        private.fetch(url, branch, token)
    except Exception as exc:
        raise PodRunError(scrub(f"could not clone {url}: {exc}", [token or ""])) from None
    workspace = root / "repo"
    private.populate_workspace(workspace, branch, url)
    if sha:
        subprocess.run(["git", "-c", "core.hooksPath=/dev/null", "-C", str(workspace), "checkout", "-q", "--detach",
                        sha], check=True, capture_output=True)
    return workspace


def revoke(environ: Mapping[str, str]) -> None:
    """Give the clone token back at once: nothing in the pod needs GitHub after the clone."""
    token, api = environ.get(CLONE_TOKEN_KEY), environ.get(GITHUB_API_URL)
    if not token or not api:
        return
    try:
        httpx.delete(api.rstrip("/") + "/installation/token", timeout=30,
                     headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"})
    except httpx.HTTPError as exc:  # it lapses within the hour anyway
        _say(f"could not revoke the clone token ({type(exc).__name__})")


async def execute(environ: Mapping[str, str]) -> int:
    """Run one Kubernetes run from this pod; the exit code is the runner's (0 once the result was delivered)."""
    try:
        payload = json.loads(environ.get(PAYLOAD_KEY) or "")
    except ValueError:
        raise PodRunError(f"{PAYLOAD_KEY} is missing or not JSON") from None
    # Group-writable: the agent's user shares the workspace's group (the pod's fsGroup), not its owner.
    os.umask(0o002)
    shared = Path(environ.get(WORKSPACE_VAR) or WORKSPACE)
    own = Path(environ.get(RUNNER_DIR_VAR) or RUNNER_DIR)
    handoff = Handoff(shared / HANDOFF_DIR)
    handoff.create()
    try:
        for directory in ("home", "tmp"):
            (own / directory).mkdir(parents=True, exist_ok=True)
        try:
            checkout = clone(environ, own, payload)
        finally:
            revoke(environ)
        # The agent's copy, .git included (agents use git); this container's own .git stays where it cannot write.
        shutil.copytree(checkout, shared / SHARED_REPO, symlinks=True)
        event = own / "tmp" / "event.json"
        event.write_text(json.dumps({"action": "draftsmith-run", "client_payload": payload}))
        event.chmod(0o600)
        # What the runner sees: neither the payload's variable nor the (revoked) clone token.
        hidden = {PAYLOAD_KEY, CLONE_TOKEN_KEY}
        runner_env = {key: value for key, value in environ.items() if key not in hidden}
        runner_env.setdefault("RUNNER_TEMP", str(own / "tmp"))
        collect = functools.partial(hand_off, handoff, shared / SHARED_REPO)
        return await runner.execute(runner_env, event_path=event, workspace=checkout, send_logs=False,
                                    collect=collect)
    finally:
        handoff.stop()  # whatever happened, the agent's container must not wait on


async def hand_off(handoff: Handoff, tree: Path, spec: runner.RunSpec, environ: Mapping[str, str], checkout: Path,
                   credentials: dict[str, str], batcher: runner.LogBatcher) -> dict[str, Any]:
    """The runner's `collect`: the agent's container runs the agent (and then the tests) on `tree`; this
    container waits, relaying the agent's output, and diffs `tree` against its own `checkout`."""
    started = time.monotonic()
    relay = LogRelay(handoff, lambda stream, text: batcher.add({"type": "log", "stream": stream, "text": text}))
    key = handoff_files.new_key()
    handoff.send_request({"agent": spec.agent, "model": spec.model, "prompt": spec.prompt, "options": spec.options,
                          "time_limit_seconds": spec.time_limit_seconds}, key)
    # The agent's container stops the agent at the time limit; past that and a margin it is gone.
    patience = (spec.time_limit_seconds or 24 * 3600) + DEADLINE_MARGIN_SECONDS
    done = await handoff.wait(lambda: handoff.read(handoff_files.AGENT_DONE, key), patience, relay.drain)
    relay.drain()
    if done is None:
        return _failed(f"the agent's container reported nothing within {patience:.0f} s (it may have been "
                       f"stopped, or run out of memory)")
    if done.get("error") and done.get("exit_code") is None:
        return _failed(str(done["error"]))
    exit_code, timed_out = done.get("exit_code"), bool(done.get("timed_out"))
    batcher.add({"type": "progress", "stage": "agent_finished", "detail": f"exit code {exit_code}"})
    batcher.add({"type": "progress", "stage": "collecting_changes"})
    # The agent's processes are all gone (its container killed them before answering); its tests run later.
    patch = runner.compute_patch(checkout, tree, spec.base_sha)
    success = bool(done.get("success"))
    error = runner.agent_error(spec, success, exit_code, timed_out)
    tests_passed = None
    if error is None and patch and spec.test_command:
        remaining = spec.time_limit_seconds - (time.monotonic() - started) if spec.time_limit_seconds else None
        limit = max(1.0, remaining) if remaining is not None else None
        runner.announce_tests(batcher, spec.test_command)
        handoff.write(handoff_files.TESTS, {"command": spec.test_command, "time_limit_seconds": limit}, key)
        tests = await handoff.wait(lambda: handoff.read(handoff_files.TESTS_DONE, key),
                                   (limit or 24 * 3600) + DEADLINE_MARGIN_SECONDS, relay.drain)
        relay.drain()
        tests = tests or {"exit_code": None, "timed_out": False}
        tests_passed = runner.tests_verdict(batcher, tests.get("exit_code"), bool(tests.get("timed_out")))
    usage = done.get("usage") or {}
    outcome = runner.AgentOutcome(exit_code, timed_out=timed_out, seconds=float(done.get("seconds") or 0))
    return runner.result_event(success, str(done.get("summary") or ""),
                               Usage(usage.get("input_tokens"), usage.get("output_tokens"), usage.get("cost_usd")),
                               outcome, patch, tests_passed, error)


def _failed(error: str) -> dict[str, Any]:
    return {"type": "result", "success": False, "summary": "", "error": error, "exit_code": None}
