"""Every sandbox backend streams output, passes exit codes, and stops the whole tree on timeout or cancel."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid

import pytest

from app.engines.sandbox import Egress, Forward, SandboxSpec, SandboxUnavailable, select_sandbox
from app.engines.sandbox.etc import CA_BUNDLE
from app.engines.sandbox.local import NOT_ISOLATED
from app.settings import Settings
from tests.runners.conftest import docker_calls


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, float]] = []

    def __call__(self, stream: str, line: str) -> None:
        self.lines.append((stream, line, time.monotonic()))

    def text(self, stream: str = "stdout") -> list[str]:
        return [line for s, line, _ in self.lines if s == stream]


def run(sandbox, workspace, script: str, cancel: threading.Event | None = None, **spec_fields):
    recorder = Recorder()
    spec = SandboxSpec(argv=["sh", "-c", script], workspace=workspace, **spec_fields)
    result = sandbox.run(spec, on_output=recorder, cancel=cancel or threading.Event())
    return result, recorder


def still_running(marker: str) -> bool:
    return subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0


def test_output_lines_arrive_in_order_while_the_command_runs(sandbox, workspace):
    result, out = run(sandbox, workspace, "for i in $(seq 1 300); do echo line$i; done; sleep 0.6; echo last")

    assert result.exit_code == 0
    assert out.text() == [f"line{i}" for i in range(1, 301)] + ["last"]
    first_at, last_at = out.lines[0][2], out.lines[-1][2]
    assert last_at - first_at >= 0.5, "the first lines came only when the command ended"


def test_stderr_is_streamed_separately(sandbox, workspace):
    result, out = run(sandbox, workspace, "echo to-out; echo to-err >&2")

    assert out.text("stdout") == ["to-out"]
    assert out.text("stderr") == ["to-err"]


@pytest.mark.parametrize("code", [0, 3, 42])
def test_exit_codes_pass_through(sandbox, workspace, code):
    result, _ = run(sandbox, workspace, f"exit {code}")

    assert result.exit_code == code
    assert not result.timed_out and not result.cancelled


def test_timeout_kills_the_whole_tree_even_a_child_that_ignores_sigterm(sandbox, workspace):
    marker = f"61.{uuid.uuid4().int % 10**8}"
    script = f"trap '' TERM; sh -c \"trap '' TERM; sleep {marker}\" & sleep {marker}; wait"

    started = time.monotonic()
    result, out = run(sandbox, workspace, script, timeout_s=1)

    assert result.timed_out and not result.cancelled
    assert result.exit_code != 0
    assert time.monotonic() - started < 6
    assert any("timed out" in line for _, line, _ in out.lines)
    time.sleep(0.2)
    assert not still_running(f"sleep {marker}")


def test_cancel_stops_the_run_within_seconds(sandbox, workspace):
    marker = f"62.{uuid.uuid4().int % 10**8}"
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()

    started = time.monotonic()
    result, _ = run(sandbox, workspace, f"trap '' TERM; sleep {marker} & sleep {marker}; wait", cancel=cancel)

    assert result.cancelled and not result.timed_out
    assert time.monotonic() - started < 5
    time.sleep(0.2)
    assert not still_running(f"sleep {marker}")


def test_output_beyond_the_cap_is_dropped_and_reported(sandbox, workspace):
    result, out = run(sandbox, workspace, "i=0; while [ $i -lt 2000 ]; do echo 0123456789012345678; i=$((i+1)); done",
                      max_output_bytes=4000)

    assert result.output_truncated
    assert result.exit_code == 0
    kept = out.text()
    assert 150 <= len(kept) <= 200
    assert out.lines[-1][0] == "system" and "truncated" in out.lines[-1][1]


def test_stdin_reaches_the_command(sandbox, workspace):
    result, out = run(sandbox, workspace, "read line; echo got:$line", stdin="hello\n")

    assert out.text() == ["got:hello"]


def test_the_command_runs_in_its_workspace_with_only_the_env_it_was_given(sandbox, workspace, monkeypatch):
    monkeypatch.setenv("DRAFTSMITH_WORKER_SECRET", "worker-secret-value")
    (workspace / "README.md").write_text("hello from the repo\n")

    result, out = run(sandbox, workspace, "cat README.md; echo $AGENT_KEY; env", env={"AGENT_KEY": "k-123"})

    text = out.text()
    assert text[:2] == ["hello from the repo", "k-123"]
    assert not any("worker-secret-value" in line for line in text)
    assert not any(line.startswith("DRAFTSMITH_") for line in text)


def test_select_sandbox_refuses_local_without_bubblewrap_and_says_what_to_do(tmp_path, monkeypatch, workspace):
    bin_dir = tmp_path / "bin-without-bwrap"
    bin_dir.mkdir()
    for tool in ("sh", "prlimit", "env"):
        os.symlink(f"/usr/bin/{tool}", bin_dir / tool)
    monkeypatch.setenv("PATH", str(bin_dir))

    with pytest.raises(SandboxUnavailable) as refused:
        select_sandbox(Settings(sandbox="local"))
    assert "bubblewrap" in str(refused.value)
    assert "DRAFTSMITH_SANDBOX=unsafe-local" in str(refused.value)

    unsafe = select_sandbox(Settings(sandbox="unsafe-local"))
    result, out = run(unsafe, workspace, "echo still runs")
    assert result.exit_code == 0 and out.text() == ["still runs"]


def test_select_sandbox_picks_bubblewrap_and_docker():
    assert select_sandbox(Settings(sandbox="local")).name == "bubblewrap"
    docker = select_sandbox(Settings(sandbox="docker", docker_image="example/agents:1"))
    assert docker.name == "docker" and docker.image == "example/agents:1"


def test_docker_backend_asks_the_engine_for_limits_and_keeps_secrets_out_of_argv(fake_docker, workspace):
    sandbox, log = fake_docker

    result, out = run(sandbox, workspace, "echo key=$MODEL_KEY; touch made-here", env={"MODEL_KEY": "sk-secret-1"},
                      memory_mb=256, max_processes=64)

    assert result.exit_code == 0
    assert out.text() == ["key=sk-secret-1"]
    assert (workspace / "made-here").exists()
    argv = docker_calls(log)[0]
    joined = " ".join(argv)
    assert "sk-secret-1" not in joined
    assert ["--network", "none"] == argv[argv.index("--network"):argv.index("--network") + 2]
    assert "--memory 256m" in joined and "--pids-limit 64" in joined
    assert f"{workspace}:/workspace" in argv
    assert "draftsmith/test-image" in argv


def test_docker_backend_has_no_network_but_the_relay_to_the_egress_socket(fake_docker, workspace, tmp_path):
    sandbox, log = fake_docker
    socket_dir = tmp_path / "egress"
    socket_dir.mkdir()
    egress = Egress(socket_path=socket_dir / "proxy.sock", forwards=[Forward(8799, "127.0.0.1", 8799)])

    run(sandbox, workspace, "true", env={"MODEL_KEY": "sk-secret-2"}, egress=egress, extra_ca_pem="PEM")

    argv = docker_calls(log)[0]
    joined = " ".join(argv)
    assert argv[argv.index("--network") + 1] == "none"
    assert argv.count("--network") == 1 and "bridge" not in argv and "host" not in argv
    assert f"{socket_dir}:/run/draftsmith:ro" in argv
    assert any(v.endswith(f":{CA_BUNDLE}:ro") for v in argv)
    assert argv[argv.index("draftsmith/test-image") + 1:] == [
        "python3", "-I", "-S", "/run/draftsmith-relay.py", "/run/draftsmith/proxy.sock", "3128", "8799:127.0.0.1:8799",
        "--", "sh", "-c", "true"]
    assert "HTTPS_PROXY=http://127.0.0.1:3128" in argv and f"SSL_CERT_FILE={CA_BUNDLE}" in argv
    assert "sk-secret-2" not in joined


def test_unsafe_local_says_first_that_nothing_is_isolated(workspace):
    unsafe = select_sandbox(Settings(sandbox="unsafe-local"))

    result, out = run(unsafe, workspace, "echo ran")

    assert out.lines[0][:2] == ("system", NOT_ISOLATED)
    assert "nothing is isolated" in NOT_ISOLATED and "secrets" in NOT_ISOLATED
    assert out.text() == ["ran"]
    assert unsafe.isolated is False
    assert select_sandbox(Settings(sandbox="local")).isolated and select_sandbox(Settings(sandbox="docker")).isolated


def test_unsafe_local_trusts_the_operators_extra_ca_too(workspace):
    unsafe = select_sandbox(Settings(sandbox="unsafe-local"))
    script = 'grep -c OPERATOR "$SSL_CERT_FILE"; [ "$NODE_EXTRA_CA_CERTS" = "$SSL_CERT_FILE" ] && echo same'

    result, out = run(unsafe, workspace, script,
                      extra_ca_pem="-----BEGIN CERTIFICATE-----\nOPERATOR\n-----END CERTIFICATE-----\n")

    assert out.text() == ["1", "same"]


def test_docker_backend_kills_the_container_on_cancel(fake_docker, workspace):
    sandbox, log = fake_docker
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()

    result, _ = run(sandbox, workspace, "sleep 30", cancel=cancel)

    assert result.cancelled
    calls = docker_calls(log)
    name = calls[0][calls[0].index("--name") + 1]
    assert ["kill", name] in calls
