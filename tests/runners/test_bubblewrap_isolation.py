"""A hostile command under bubblewrap cannot reach the app's secrets, files, environment or neighbours."""

from __future__ import annotations

import http.server
import threading

import pytest

from app.engines.sandbox import SandboxSpec
from tests.runners.conftest import run_script as run

PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEdraftsmithAPPKEYmaterial\n-----END RSA PRIVATE KEY-----\n"


def test_hostile_command_cannot_read_keys_database_env_or_other_workspaces(bwrap, tmp_path, monkeypatch):
    # Given the app's data dir with a private key and a database, and a second run's workspace
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "private-key.pem").write_text(PRIVATE_KEY)
    (data_dir / "draftsmith.db").write_bytes(b"SQLite format 3\x00 DBROW-installation-token-ghs_xyz")
    other = tmp_path / "workspaces" / "run-2"
    other.mkdir(parents=True)
    (other / "notes.txt").write_text("OTHER-RUN-PRIVATE-CODE")
    mine = tmp_path / "workspaces" / "run-1"
    mine.mkdir()
    monkeypatch.setenv("GITHUB_PRIVATE_KEY", "ENV-SECRET-private-key-value")
    monkeypatch.setenv("DRAFTSMITH_ENCRYPTION_KEY", "ENV-SECRET-encryption-key")

    # When a hostile command goes looking for them
    script = f"""
        cat {data_dir}/private-key.pem {data_dir}/draftsmith.db {other}/notes.txt
        ls {data_dir} {other} ../run-2 /root
        grep -rl MIIEdraftsmith / --exclude-dir=proc --exclude-dir=sys --exclude-dir=usr 2>/dev/null
        find / -path /proc -prune -o -path /usr -prune -o -name "*.pem" -print 2>/dev/null | xargs -r cat
        cat /proc/1/environ /proc/*/environ 2>/dev/null | tr '\\0' '\\n'
        env
        echo pwned > {data_dir}/pwned; echo pwned > {tmp_path}/pwned; echo pwned > /usr/pwned
        mkdir -p {data_dir} && echo pwned > {data_dir}/inside-only
        echo processes: $(ls /proc | grep -c '^[0-9]')
        echo ok > /tmp/scratch && echo tmp-writable
        echo ok > $HOME/scratch && echo home-writable
        echo ok > /workspace/result.txt && echo workspace-writable
    """
    result, lines = run(bwrap, mine, script)
    output = "\n".join(line for _, line in lines)

    # Then nothing of the app leaks, nothing outside the workspace changes, and its own work lands
    for secret in ("MIIEdraftsmith", "DBROW", "OTHER-RUN", "ENV-SECRET"):
        assert secret not in output
    assert not (data_dir / "pwned").exists() and not (tmp_path / "pwned").exists()
    assert not (data_dir / "inside-only").exists()
    assert (data_dir / "private-key.pem").read_text() == PRIVATE_KEY
    assert (mine / "result.txt").read_text() == "ok\n"
    assert {"tmp-writable", "home-writable", "workspace-writable"} <= set(output.splitlines())
    processes = int(next(line for line in output.splitlines() if line.startswith("processes:")).split()[1])
    assert processes < 10, "the host's processes are visible"


def test_a_read_only_workspace_can_be_read_but_not_changed(bwrap, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("plan me\n")

    result, lines = run(bwrap, ws, "cat README.md; echo changed > README.md; touch new-file", workspace_readonly=True)

    assert ("stdout", "plan me") in lines
    assert result.exit_code != 0
    assert (ws / "README.md").read_text() == "plan me\n"
    assert not (ws / "new-file").exists()


def test_memory_limit_is_enforced(bwrap, tmp_path):
    result, lines = run(bwrap, tmp_path, "python3 -c 'x = bytearray(1024 * 1024 * 1024)'", memory_mb=256)

    assert result.exit_code != 0
    assert any("MemoryError" in line for s, line in lines if s == "stderr")


def test_process_limit_stops_a_fork_bomb(bwrap, tmp_path):
    result, lines = run(bwrap, tmp_path, "for i in $(seq 1 40); do sleep 1 & done; wait; echo done",
                        max_processes=10, timeout_s=20)

    assert any("fork" in line.lower() for s, line in lines if s == "stderr")
    assert result.duration_s < 10


def test_file_size_limit_is_enforced(bwrap, tmp_path):
    result, _ = run(bwrap, tmp_path, "head -c 3000000 /dev/zero > big", max_file_bytes=1_000_000)

    assert result.exit_code != 0
    assert (tmp_path / "big").stat().st_size <= 1_000_000


@pytest.fixture
def loopback_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_without_egress_a_hostile_command_cannot_reach_the_hosts_loopback(bwrap, tmp_path, loopback_server):
    port = loopback_server.rsplit(":", 1)[1].strip("/")
    probe = (f"python3 -c 'import urllib.request; urllib.request.urlopen(\"{loopback_server}\", timeout=3); print(\"reached\")';"
             f" python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), timeout=3); print(\"reached\")';"
             " ls /sys/class/net; cat /proc/net/dev")

    result, lines = run(bwrap, tmp_path, probe)

    assert ("stdout", "reached") not in lines
    assert any("ConnectionRefusedError" in line for s, line in lines if s == "stderr")
    interfaces = [line.split(":")[0].strip() for s, line in lines if s == "stdout" and ":" in line]
    assert interfaces == ["lo"], "the sandbox sees a network interface besides its own loopback"


@pytest.mark.parametrize("uid", [None, 250_000], ids=["unprivileged-worker", "root-worker"])
def test_bwrap_always_gets_its_own_network_namespace(bwrap, tmp_path, uid):
    options = bwrap.bwrap_options(SandboxSpec(argv=["true"], workspace=tmp_path), uid, tmp_path)

    assert "--unshare-net" in options
    assert "--share-net" not in options and "--unshare-all" not in options


def test_an_agent_installed_under_a_private_directory_can_run(bwrap, tmp_path):
    # Given an agent's install dir deep under the worker's 0700 temp dir (like a venv under /root)
    venv_bin = tmp_path / "agents" / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    tool = venv_bin / "agent-cli"
    tool.write_text("#!/bin/sh\necho agent ran in $PWD\n")
    tool.chmod(0o755)
    ws = tmp_path / "ws"
    ws.mkdir()

    result, lines = run(bwrap, ws, "agent-cli", extra_ro_binds=[tmp_path / "agents" / "venv"],
                        env={"PATH": f"{venv_bin}:/usr/bin:/bin"})

    assert ("stdout", "agent ran in /workspace") in lines
    assert result.exit_code == 0
