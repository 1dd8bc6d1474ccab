"""The supervisor restarts children that die, stops them in order, and leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil

from app.supervisor import ChildSpec, Supervisor


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_child_that_keeps_dying_is_restarted_with_growing_delays(tmp_path):
    starts = tmp_path / "starts"
    crasher = ChildSpec("crasher", python(f"""
        import time
        with open({str(starts)!r}, "a") as f:
            f.write(f"{{time.monotonic()}}\\n")
        raise SystemExit(3)
    """))
    supervisor = Supervisor([crasher], backoff_initial=0.1, backoff_max=5)
    supervisor.start()
    deadline = time.monotonic() + 5
    try:
        supervisor.run_until(
            lambda: (starts.exists() and len(starts.read_text().split()) >= 4) or time.monotonic() > deadline
        )
    finally:
        supervisor.stop()
    times = [float(t) for t in starts.read_text().split()]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4
    assert supervisor.children[0].exit_codes[:3] == [3, 3, 3]


def test_run_until_restarts_a_killed_child(tmp_path):
    sleeper = ChildSpec("sleeper", python("import time; time.sleep(60)"))
    supervisor = Supervisor([sleeper], backoff_initial=0.05)
    supervisor.start()
    first = supervisor.pids()["sleeper"]
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 5
    supervisor.run_until(lambda: supervisor.pids().get("sleeper") not in (None, first) or time.monotonic() > deadline)
    second = supervisor.pids()["sleeper"]
    supervisor.stop()
    assert second != first
    assert gone(second)


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period():
    stubborn = ChildSpec("stubborn", python("""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
    """))
    supervisor = Supervisor([stubborn])
    supervisor.start()
    pid = supervisor.pids()["stubborn"]
    time.sleep(0.3)  # let it install its handler
    started = time.monotonic()
    supervisor.stop(grace_seconds=0.5)
    assert 0.5 <= time.monotonic() - started < 3
    assert gone(pid)


def test_lower_ranks_stop_before_higher_ranks(tmp_path):
    log = tmp_path / "log"
    child = """
        import signal, sys, time
        def stop(*_):
            time.sleep({delay})
            with open({log!r}, "a") as f:
                f.write("{name}\\n")
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        time.sleep(60)
    """
    # The web process is slow to stop; Redis must still wait for it.
    web = ChildSpec("web", python(child.format(delay=0.4, log=str(log), name="web")), stop_rank=0)
    redis = ChildSpec("redis", python(child.format(delay=0, log=str(log), name="redis")), stop_rank=2)
    supervisor = Supervisor([redis, web])
    supervisor.start()
    time.sleep(0.3)
    supervisor.stop()
    assert log.read_text().split() == ["web", "redis"]


def test_grandchildren_are_stopped_with_their_parent(tmp_path):
    pidfile = tmp_path / "grandchild"
    parent = ChildSpec("parent", python(f"""
        import subprocess, sys, time
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pidfile)!r}, "w").write(str(p.pid))
        time.sleep(60)
    """))
    supervisor = Supervisor([parent])
    supervisor.start()
    wait_for(lambda: pidfile.exists() and pidfile.read_text())
    grandchild = int(pidfile.read_text())
    supervisor.stop()
    wait_for(lambda: gone(grandchild), timeout=2)


def test_children_die_when_the_supervisor_is_killed_outright(tmp_path):
    pidfile = tmp_path / "pids"
    script = f"""
        import sys
        from app.supervisor import ChildSpec, Supervisor
        spec = ChildSpec("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
        s = Supervisor([spec])
        s.start()
        open({str(pidfile)!r}, "w").write(str(s.pids()["sleeper"]))
        s.run_until(lambda: False)
    """
    boss = subprocess.Popen(python(script))
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text(), timeout=10)
        child = int(pidfile.read_text())
        boss.kill()
        boss.wait()
        wait_for(lambda: gone(child), timeout=3)
    finally:
        if boss.poll() is None:
            boss.kill()


def test_children_stay_in_the_supervisors_session_in_process_groups_of_their_own():
    web = ChildSpec("web", python("import time; time.sleep(60)"))
    worker = ChildSpec("worker", python("import time; time.sleep(60)"))
    supervisor = Supervisor([web, worker])
    supervisor.start()
    try:
        # With autogroup scheduling a session of its own would get its own CPU share and make the
        # workers' niceness moot; a process group of its own keeps the terminal's Ctrl-C off it
        for pid in (c.process.pid for c in supervisor.children):
            assert os.getsid(pid) == os.getsid(0)
            assert os.getpgid(pid) == pid
    finally:
        supervisor.stop()


def test_replacing_children_starts_new_ones_before_stopping_the_old_and_leaves_the_rest(tmp_path):
    log = tmp_path / "log"
    web = ChildSpec("web", python(f"""
        import os, signal, sys, time
        def bye(*_):
            open({str(log)!r}, "a").write(f"stop {{os.getpid()}}\\n"); sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        open({str(log)!r}, "a").write(f"start {{os.getpid()}}\\n")
        time.sleep(60)
    """))
    redis = ChildSpec("redis", python("import time; time.sleep(60)"), stop_rank=2)
    supervisor = Supervisor([web, redis])
    supervisor.start()
    try:
        wait_for(lambda: log.exists() and "start" in log.read_text())
        before = supervisor.pids()

        supervisor.replace(lambda spec: spec.name == "web")

        after = supervisor.pids()
        assert after["redis"] == before["redis"]
        assert after["web"] != before["web"] and gone(before["web"])
        wait_for(lambda: f"start {after['web']}" in log.read_text())
        assert f"stop {before['web']}" in log.read_text()  # asked to stop, not killed
        assert supervisor.children[0].restarts == 0  # planned, not counted as a crash
        supervisor.poll()
        assert supervisor.pids()["web"] == after["web"]
    finally:
        supervisor.stop()


def test_settings_from_setup_naming_a_relay_start_one_relay_child_without_a_restart(tmp_path, monkeypatch):
    from app.cli._serve import _restart_on_new_app_settings
    from app.settings import APP_SETTINGS_FILE

    monkeypatch.setenv("DRAFTSMITH_DATA_DIR", str(tmp_path))
    path = tmp_path / APP_SETTINGS_FILE
    worker = ChildSpec(name="worker", argv=python("import time; time.sleep(60)"))
    supervisor = Supervisor([worker])
    supervisor.start()
    try:
        tick = _restart_on_new_app_settings(supervisor, None, path, relay=lambda: ChildSpec(
            name="relay", argv=python("import time; time.sleep(60)")))
        tick()
        assert not supervisor.has("relay")
        path.write_text("GITHUB_APP_ID=7\nDRAFTSMITH_WEBHOOK_RELAY_URL=https://smee.io/AbCdEf123\n")
        wait_for(lambda: tick() or supervisor.has("relay"), timeout=5)
        [relay] = [child for child in supervisor.children if child.spec.name == "relay"]
        assert relay.process.poll() is None
        path.write_text("GITHUB_APP_ID=8\nDRAFTSMITH_WEBHOOK_RELAY_URL=https://smee.io/AbCdEf123\n")
        time.sleep(0.6)
        tick()
        assert [child.spec.name for child in supervisor.children].count("relay") == 1
    finally:
        supervisor.stop()
