"""Run child processes, restart any that dies (with backoff), and stop them all in a fixed order."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from app.logs import get_logger

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec. If `serve` itself is killed with SIGKILL it gets no
    # chance to stop anyone, so ask the kernel to send SIGTERM to each child when its parent dies.
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass


@dataclass
class ChildSpec:
    """How to start one supervised process. Lower `stop_rank` stops first; Redis has the highest."""

    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    pass_fds: tuple[int, ...] = ()
    stop_rank: int = 0
    # Written to the child's stdin, which is then closed: how secrets reach a child without showing in `ps`.
    input: bytes | None = field(default=None, repr=False)
    stdout: int | None = None  # e.g. subprocess.DEVNULL; None inherits ours
    # Called after (re)starting; returns once the child is usable (e.g. Redis answers PING) or raises.
    wait_ready: Callable[[subprocess.Popen], None] | None = None


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures_in_a_row: int = 0
    restart_at: float | None = None
    exit_codes: list[int] = field(default_factory=list)


class Supervisor:
    """Keeps a set of children running until `stop()`.

    Each child gets its own process group (so a terminal's Ctrl-C reaches only the supervisor, which
    then stops children in order) and dies with the supervisor if the supervisor is killed outright.
    """

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        grace_seconds: float = 10.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        healthy_after: float = 10.0,
    ) -> None:
        self.children = [_Child(spec) for spec in specs]
        self.grace_seconds = grace_seconds
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        # A child that ran at least this long before dying is restarted without accumulated backoff.
        self.healthy_after = healthy_after
        self.log = get_logger(component="supervisor")
        self._stopping = False

    def start(self) -> None:
        """Start every child in order, waiting for each one's readiness check."""
        for child in self.children:
            self._spawn(child)

    def _spawn(self, child: _Child) -> None:
        spec = child.spec
        child.process = subprocess.Popen(
            spec.argv,
            env=spec.env,
            pass_fds=spec.pass_fds,
            stdin=subprocess.PIPE if spec.input is not None else None,
            stdout=spec.stdout,
            # A process group of its own, not a session: on kernels with autogroup scheduling (most
            # distributions) each session gets an equal share of the CPU whatever its nice value,
            # so a session per child made the workers' niceness meaningless (measured: a worker at
            # nice 19 still took half a core from busy web processes).
            process_group=0,
            preexec_fn=_die_with_parent,
        )
        if spec.input is not None:
            try:
                child.process.stdin.write(spec.input)
                child.process.stdin.close()
            except BrokenPipeError:  # it died at once; poll() restarts it
                pass
        child.started_at = time.monotonic()
        child.restart_at = None
        self.log.info("child started", child=spec.name, pid=child.process.pid)
        if spec.wait_ready is not None:
            spec.wait_ready(child.process)

    def poll(self) -> None:
        """Notice children that exited and restart those whose backoff has elapsed."""
        now = time.monotonic()
        for child in self.children:
            process = child.process
            if process is not None and process.poll() is not None:
                code = process.returncode
                child.exit_codes.append(code)
                ran_for = now - child.started_at
                if ran_for >= self.healthy_after:
                    child.failures_in_a_row = 0
                delay = min(self.backoff_max, self.backoff_initial * 2**child.failures_in_a_row)
                child.failures_in_a_row += 1
                child.process = None
                child.restart_at = now + delay
                self.log.warning(
                    "child exited; restarting",
                    child=child.spec.name,
                    pid=process.pid,
                    exit_code=code,
                    ran_seconds=round(ran_for, 1),
                    restart_in_seconds=delay,
                )
                # Reap the rest of its process group (e.g. a dead parent's own workers).
                _signal_group(process.pid, signal.SIGKILL)
            if child.process is None and child.restart_at is not None and now >= child.restart_at and not self._stopping:
                child.restarts += 1
                try:
                    self._spawn(child)
                except Exception as exc:  # a failed readiness check counts as another failure
                    self.log.error("child failed to start", child=child.spec.name, error=str(exc))
                    if child.process is not None:
                        _signal_group(child.process.pid, signal.SIGKILL)
                        child.process.wait()
                        child.process = None
                    child.failures_in_a_row += 1
                    delay = min(self.backoff_max, self.backoff_initial * 2**child.failures_in_a_row)
                    child.restart_at = time.monotonic() + delay

    def run_until(self, should_stop: Callable[[], bool], interval: float = 0.1,
                  tick: Callable[[], None] | None = None) -> None:
        """Supervise until `should_stop()` is true; the caller then calls `stop()`. `tick` runs on each round."""
        while not should_stop():
            self.poll()
            if tick is not None:
                tick()
            time.sleep(interval)

    def add(self, spec: ChildSpec) -> None:
        """Start one more child while running (a relay newly configured), supervised like the others."""
        child = _Child(spec)
        self.children.append(child)
        self._spawn(child)

    def has(self, name: str) -> bool:
        return any(child.spec.name == name for child in self.children)

    def replace(self, chosen: Callable[[ChildSpec], bool], grace_seconds: float | None = None) -> None:
        """Start a fresh process for each chosen child, then stop the old ones as `stop()` does.

        A planned restart, not counted as a failure. The new processes start before the old ones get
        SIGTERM, so web processes sharing the supervisor's listening socket never leave it unserved:
        connections made meanwhile wait in its backlog for whichever process accepts first.
        """
        grace = self.grace_seconds if grace_seconds is None else grace_seconds
        old = []
        for child in self.children:
            if chosen(child.spec) and child.process is not None:
                old.append((child.spec.name, child.process))
                self._spawn(child)
                child.failures_in_a_row = 0
        for name, process in old:
            self.log.info("replacing child", child=name, pid=process.pid)
            _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for name, process in old:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log.warning("child ignored SIGTERM; killing it", child=name, pid=process.pid)
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
            _signal_group(process.pid, signal.SIGKILL)

    def stop(self, grace_seconds: float | None = None) -> None:
        """SIGTERM each rank of children (lowest rank first), then SIGKILL what outlives the grace period."""
        self._stopping = True
        grace = self.grace_seconds if grace_seconds is None else grace_seconds
        for rank in sorted({child.spec.stop_rank for child in self.children}):
            group = [c for c in self.children if c.spec.stop_rank == rank and c.process is not None]
            for child in group:
                self.log.info("stopping child", child=child.spec.name, pid=child.process.pid)
                _signal_group(child.process.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            for child in group:
                process = child.process
                try:
                    process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.log.warning("child ignored SIGTERM; killing it", child=child.spec.name, pid=process.pid)
                    _signal_group(process.pid, signal.SIGKILL)
                    process.wait()
                # Grandchildren (uvicorn/dramatiq helpers) share the group; make sure none linger.
                _signal_group(process.pid, signal.SIGKILL)
                child.process = None

    def pids(self) -> dict[str, int]:
        return {c.spec.name: c.process.pid for c in self.children if c.process is not None}


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
