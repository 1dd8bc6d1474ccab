"""On an Actions runner the agent runs as a user of its own: the job's credentials stay out of its reach."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from app.engines.actions.agent_user import AGENT_USER_VARIABLE, DEFAULT_AGENT_USER
from tests.actions.conftest import make_task_and_run
from tests.actions.test_actions_run import (  # noqa: F401 (fixtures)
    _actions_env, _dispatch_event, _run_step, checkout, server, sqlite_only,
)

pytestmark = [sqlite_only, pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                              reason="switching users needs root here (GitHub's runners use sudo)")]

OIDC_REQUEST_TOKEN = "oidc-request-" + "r" * 30
# What an agent that wants the job's credentials tries: every process's environment and the event file.
SNOOP = ("id -u > uid.txt; "
         "(cat /proc/[0-9]*/environ 2>/dev/null | tr '\\000' '\\n' | grep -a ACTIONS_ID_TOKEN_REQUEST_TOKEN "
         "|| echo none) > environ.txt; "
         "(cat \"$SNOOP_EVENT\" 2>/dev/null | grep -o 'dsr_[A-Za-z0-9_-]*' || echo unreadable) > event.txt")


@pytest.fixture
def open_dir():
    """A directory everyone may traverse, as a runner's work directory may be."""
    path = Path(tempfile.mkdtemp(prefix="draftsmith-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _snooping_run(engine, server, checkout, tmp_path, open_dir, **extra):
    base, _ = server
    workspace, sha = checkout
    run_id = make_task_and_run(engine)
    event = _dispatch_event(engine, run_id, base, sha, SNOOP)
    env = _actions_env(tmp_path, workspace, event, ACTIONS_ID_TOKEN_REQUEST_TOKEN=OIDC_REQUEST_TOKEN, **extra)
    event_file = open_dir / "event.json"
    shutil.copy(env["GITHUB_EVENT_PATH"], event_file)
    event_file.chmod(0o644)
    env["GITHUB_EVENT_PATH"] = env["SNOOP_EVENT"] = str(event_file)
    done = _run_step(env, workspace)
    assert done.returncode == 0, done.stdout + done.stderr
    return event["client_payload"]["callback"]["token"]


def _found(patch: str, name: str) -> str:
    lines = patch.split(f"+++ b/{name}\n", 1)[1].split("\n")
    return lines[1].removeprefix("+")


def test_the_agent_runs_as_its_own_user_and_cannot_read_the_jobs_credentials(engine, handler, server, checkout,
                                                                             tmp_path, open_dir):
    token = _snooping_run(engine, server, checkout, tmp_path, open_dir)

    [(_, result)] = handler.results
    assert result.success, result.error
    assert int(_found(result.patch, "uid.txt")) not in (0, os.getuid())
    assert _found(result.patch, "environ.txt") == "none"
    assert _found(result.patch, "event.txt") == "unreadable"
    assert OIDC_REQUEST_TOKEN not in result.patch and token not in result.patch


def test_shared_runs_as_the_runner_and_says_what_that_exposes(engine, handler, server, checkout, tmp_path,
                                                               open_dir):
    """The opt-out does what it says: this is what the default protects against."""
    _snooping_run(engine, server, checkout, tmp_path, open_dir, **{AGENT_USER_VARIABLE: "shared"})

    [(_, result)] = handler.results
    assert int(_found(result.patch, "uid.txt")) == os.getuid()
    assert OIDC_REQUEST_TOKEN in _found(result.patch, "environ.txt")


def test_a_git_filter_the_agent_configures_never_runs_as_the_runner(engine, handler, server, checkout, tmp_path):
    base, _ = server
    workspace, sha = checkout
    pwned = tmp_path / "pwned"
    run_id = make_task_and_run(engine)
    attack = (f"git config filter.evil.clean 'touch {pwned}; cat' && git config diff.external 'touch {pwned}' && "
              "echo '* filter=evil' > .gitattributes && echo new > new.txt")
    event = _dispatch_event(engine, run_id, base, sha, attack)

    done = _run_step(_actions_env(tmp_path, workspace, event), workspace)

    assert done.returncode == 0, done.stderr
    [(_, result)] = handler.results
    assert "+++ b/new.txt" in result.patch
    assert not pwned.exists()


def test_nothing_the_agent_started_outlives_its_run(engine, handler, server, checkout, tmp_path):
    base, _ = server
    workspace, sha = checkout
    run_id = make_task_and_run(engine)
    event = _dispatch_event(engine, run_id, base, sha, "setsid sleep 3017 </dev/null >/dev/null 2>&1 & echo ok")

    done = _run_step(_actions_env(tmp_path, workspace, event), workspace)

    assert done.returncode == 0, done.stderr
    left = subprocess.run(["pgrep", "-u", DEFAULT_AGENT_USER, "-f", "sleep 3017"], capture_output=True, text=True)
    assert left.stdout == ""


def test_a_runner_that_cannot_switch_user_runs_nothing_and_says_why(engine, handler, server, checkout, open_dir):
    """Not root and no passwordless sudo (a locked-down self-hosted runner): refused, reported, nothing run."""
    base, _ = server
    _, sha = checkout
    workspace = open_dir / "workspace"
    shutil.copytree(checkout[0], workspace)
    marker = open_dir / "ran"
    run_id = make_task_and_run(engine)
    event = _dispatch_event(engine, run_id, base, sha, f"touch {marker}")
    env = _actions_env(open_dir, workspace, event)
    env["HOME"] = str(open_dir)
    subprocess.run(["chown", "-R", "nobody:nogroup", str(open_dir)], check=True)

    done = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
                           *_runner_command()], env=env, cwd=workspace, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stdout + done.stderr
    [(_, result)] = handler.results
    assert not result.success
    assert "cannot start the agent as a separate user" in result.error and AGENT_USER_VARIABLE in result.error
    assert not marker.exists()


def _runner_command() -> list[str]:
    from tests.actions.test_actions_run import DRAFTSMITH

    return [str(DRAFTSMITH), "actions-run"]
