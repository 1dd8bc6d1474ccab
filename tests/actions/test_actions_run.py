"""`draftsmith actions-run` played as GitHub Actions runs it: event file, env, checkout, callbacks over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn
from sqlmodel import select
from starlette.applications import Starlette
from starlette.routing import Mount

from app.db import session_scope
from app.engines.actions.oidc import OIDCVerifier
from app.models import LogLine, Run, Task
from app.engines.actions import callback_tokens
from app.engines.actions.dispatch import build_dispatch_payload
from app.engines.actions.callbacks import RunCallbacks, make_routes
from tests.actions._oidc_issuer import FakeIssuer
from tests.actions.conftest import AUDIENCE, make_task_and_run

DRAFTSMITH = Path(sys.executable).parent / "draftsmith"
# These tests are about the runner side; the endpoint and tokens are covered on PostgreSQL elsewhere.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(engine, handler):
    """The app's callback endpoint and GitHub's OIDC issuer, on one loopback port."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    issuer = FakeIssuer(issuer=f"{base}/oidc")
    verifier = OIDCVerifier(AUDIENCE, issuer=issuer.issuer)
    app = Starlette(routes=[
        *make_routes(RunCallbacks(engine=engine, handler=handler, oidc=verifier)),
        Mount("/oidc", app=issuer.asgi(base_url=issuer.issuer)),
    ])
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert uv.started
    yield base, issuer
    uv.should_exit = True
    thread.join(10)


@pytest.fixture
def checkout(tmp_path):
    """What actions/checkout leaves: the repository at the base commit."""
    repo = tmp_path / "workspace"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.test"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    (repo / "README.md").write_text("teh readme\n")
    (repo / "old.txt").write_text("to be deleted\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    return repo, sha


def _actions_env(tmp_path: Path, workspace: Path, event: dict, **extra: str) -> dict[str, str]:
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(event))
    runner_temp = tmp_path / "runner_temp"
    runner_temp.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8",
        "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "repository_dispatch", "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_WORKSPACE": str(workspace), "RUNNER_TEMP": str(runner_temp), "GITHUB_REPOSITORY": "octo/demo",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), "GITHUB_TOKEN": "ghs_" + "j" * 36,
    }
    env.update(extra)
    return env


def _dispatch_event(engine, run_id: int, base: str, sha: str, command: str, *, time_limit=None) -> dict:
    with session_scope(engine) as session:
        run = session.get(Run, run_id)
        task = session.get(Task, run.task_id)
        task.base_sha = sha
    token = callback_tokens.issue(engine, run_id, timedelta(minutes=40))
    payload = build_dispatch_payload(task, run, f"{base}/api/runs/{run_id}/events", token, AUDIENCE,
                                     prompt="Fix the typo in README.md", agent_options={"command": command},
                                     time_limit_seconds=time_limit)
    return {"action": "draftsmith-run", "client_payload": payload["client_payload"],
            "repository": {"full_name": "octo/demo"}}


def _run_step(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(DRAFTSMITH), "actions-run"], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def _logs(engine, run_id) -> list[str]:
    with session_scope(engine) as session:
        return [line.text for line in
                session.exec(select(LogLine).where(LogLine.run_id == run_id).order_by(LogLine.seq))]


EDIT = ("sed -i s/teh/the/ README.md && rm old.txt && printf 'bin\\000ary' > blob.bin && cat {prompt_file} && "
        "echo \"key=$OPENAI_API_KEY oidc=${ACTIONS_ID_TOKEN_REQUEST_TOKEN:-hidden} gh=${GITHUB_TOKEN:-hidden}\"")


@sqlite_only
@pytest.mark.parametrize("auth", ["oidc", "callback-token"])
def test_the_workflow_step_runs_the_agent_and_reports_the_patch(engine, handler, server, checkout, tmp_path, auth):
    base, issuer = server
    workspace, sha = checkout
    run_id = make_task_and_run(engine)
    event = _dispatch_event(engine, run_id, base, sha, EDIT)
    extra = {"OPENAI_API_KEY": "sk-live-" + "k" * 30}
    if auth == "oidc":
        extra |= {"ACTIONS_ID_TOKEN_REQUEST_URL": f"{base}/oidc/token?api-version=2.0",
                  "ACTIONS_ID_TOKEN_REQUEST_TOKEN": issuer.request_token}

    done = _run_step(_actions_env(tmp_path, workspace, event, **extra), workspace)

    assert done.returncode == 0, done.stdout + done.stderr
    assert issuer.token_requests > 0 if auth == "oidc" else issuer.token_requests == 0
    [(got_run, result)] = handler.results
    assert got_run == run_id and result.success and result.exit_code == 0
    assert [stage for _, stage in handler.stages] == ["agent_started", "agent_finished", "collecting_changes"]
    # The patch is what the command did, and applies to a fresh copy of the base.
    fresh = tmp_path / "fresh"
    subprocess.run(["git", "clone", "-q", str(workspace), str(fresh)], check=True)
    subprocess.run(["git", "-C", str(fresh), "checkout", "-q", sha], check=True)
    subprocess.run(["git", "-C", str(fresh), "apply", "--binary", "-"], input=result.patch.encode(), check=True)
    assert (fresh / "README.md").read_text() == "the readme\n"
    assert not (fresh / "old.txt").exists()
    assert (fresh / "blob.bin").read_bytes() == b"bin\0ary"
    # The log holds the agent's output, with the provider key scrubbed and the runner's credentials unseen.
    logs = "\n".join(_logs(engine, run_id))
    assert "Fix the typo in README.md" in logs
    assert "key=[redacted] oidc=hidden gh=hidden" in logs
    assert "sk-live" not in logs and "sk-live" not in done.stdout
    assert result.usage.agent_seconds is not None


@sqlite_only
def test_a_failing_agent_is_reported_as_a_failure_and_the_job_still_succeeds(engine, handler, server, checkout,
                                                                             tmp_path):
    base, _ = server
    workspace, sha = checkout
    run_id = make_task_and_run(engine)
    event = _dispatch_event(engine, run_id, base, sha, "echo trying >&2; exit 3")

    done = _run_step(_actions_env(tmp_path, workspace, event), workspace)

    assert done.returncode == 0, done.stderr
    [(_, result)] = handler.results
    assert (result.success, result.exit_code, result.patch) == (False, 3, "")
    assert "exited 3" in result.error
    assert "trying" in _logs(engine, run_id)


@sqlite_only
def test_an_agent_past_its_time_limit_is_stopped(engine, handler, server, checkout, tmp_path):
    base, _ = server
    workspace, sha = checkout
    run_id = make_task_and_run(engine)
    event = _dispatch_event(engine, run_id, base, sha, "echo started; sleep 30 & sleep 30", time_limit=1)

    started = time.monotonic()
    done = _run_step(_actions_env(tmp_path, workspace, event), workspace)

    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 15
    [(_, result)] = handler.results
    assert not result.success and "time limit" in result.error


@sqlite_only
def test_an_undeliverable_result_fails_the_job(engine, handler, server, checkout, tmp_path):
    base, _ = server
    workspace, sha = checkout
    run_id = make_task_and_run(engine)
    event = _dispatch_event(engine, run_id, base, sha, "true")
    event["client_payload"]["callback"]["token"] = "dsr_" + "x" * 43  # not the run's credential

    done = _run_step(_actions_env(tmp_path, workspace, event), workspace)

    assert done.returncode == 1
    assert "refused the result (401)" in done.stderr
    assert handler.results == []


def test_a_manual_try_shows_the_patch_in_the_job_summary(checkout, tmp_path):
    workspace, sha = checkout
    event = {"inputs": {"instruction": "Fix the typo", "agent": "command", "command": "sed -i s/teh/the/ README.md"}}
    env = _actions_env(tmp_path, workspace, event, GITHUB_EVENT_NAME="workflow_dispatch", GITHUB_SHA=sha)

    done = _run_step(env, workspace)

    assert done.returncode == 0, done.stderr
    summary = (tmp_path / "summary.md").read_text()
    assert "-teh readme" in summary and "+the readme" in summary


def test_an_event_without_a_draftsmith_payload_is_refused(checkout, tmp_path):
    workspace, _ = checkout
    done = _run_step(_actions_env(tmp_path, workspace, {"action": "other"}), workspace)
    assert done.returncode == 2
    assert "neither a draftsmith-run client_payload" in done.stderr


@sqlite_only
def test_a_missing_provider_key_is_reported_with_what_to_set(engine, handler, server, checkout, tmp_path):
    base, _ = server
    workspace, sha = checkout
    run_id = make_task_and_run(engine)
    event = _dispatch_event(engine, run_id, base, sha, "true")
    event["client_payload"]["agent"] = {"name": "codex", "model": "gpt-5", "options": {}}

    done = _run_step(_actions_env(tmp_path, workspace, event), workspace)

    assert done.returncode == 0, done.stderr
    [(_, result)] = handler.results
    assert not result.success and "OPENAI_API_KEY" in result.error and "Actions secret" in result.error
