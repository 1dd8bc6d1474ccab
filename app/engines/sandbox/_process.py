"""Supervise one child process: stream its lines in order, enforce timeout, cancel and output cap."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from app.engines.sandbox.base import OutputCallback, SandboxResult

# Longer lines are cut into pieces so one endless line cannot exhaust memory.
_MAX_LINE_BYTES = 64 * 1024
_POLL_S = 0.05
_EOF = object()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _read_lines(stream_name: str, pipe, out: queue.Queue) -> None:
    try:
        for raw in iter(lambda: pipe.readline(_MAX_LINE_BYTES), b""):
            out.put((stream_name, raw))
    except (OSError, ValueError):
        pass
    finally:
        out.put((stream_name, _EOF))


def _write_stdin(pipe, data: str) -> None:
    try:
        pipe.write(data.encode())
    except (BrokenPipeError, OSError):
        pass
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def supervise(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: str | None,
    stdin: str | None,
    timeout_s: float,
    max_output_bytes: int,
    on_output: OutputCallback,
    cancel: threading.Event,
    pass_fds: Sequence[int] = (),
    on_stop: Callable[[], None] | None = None,
    grace_s: float = 2.0,
) -> SandboxResult:
    """Run `argv` in a new session (its own process group) and return how it ended.

    Stopping sends SIGTERM to the group, waits `grace_s`, then SIGKILL; `on_stop` lets a backend stop
    what the group does not contain (a docker container). Lines reach `on_output` from this thread only.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    proc = subprocess.Popen(
        list(argv),
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
    )
    pgid = proc.pid
    lines: queue.Queue = queue.Queue()
    readers = [
        threading.Thread(target=_read_lines, args=("stdout", proc.stdout, lines), daemon=True),
        threading.Thread(target=_read_lines, args=("stderr", proc.stderr, lines), daemon=True),
    ]
    for reader in readers:
        reader.start()
    if stdin is not None:
        threading.Thread(target=_write_stdin, args=(proc.stdin, stdin), daemon=True).start()

    open_streams = 2
    emitted = 0
    truncated = timed_out = cancelled = False
    stop_started: float | None = None
    exited_at: float | None = None

    def deliver(item) -> None:
        nonlocal open_streams, emitted, truncated
        stream_name, raw = item
        if raw is _EOF:
            open_streams -= 1
            return
        if truncated:
            return
        emitted += len(raw)
        if emitted > max_output_bytes:
            truncated = True
            on_output("system", f"output truncated: more than {max_output_bytes} bytes")
            return
        on_output(stream_name, raw.decode("utf-8", errors="replace").rstrip("\r\n"))

    while True:
        if open_streams == 0:
            # Nothing more can arrive: wait on the process itself, which usually exits a moment after
            # closing its pipes (waiting on the empty queue instead cost up to _POLL_S per run).
            try:
                proc.wait(timeout=_POLL_S)
            except subprocess.TimeoutExpired:
                pass
        else:
            try:
                deliver(lines.get(timeout=_POLL_S))
                while True:  # drain what is already there before checking the clock again
                    deliver(lines.get_nowait())
            except queue.Empty:
                pass
        now = time.monotonic()
        if proc.poll() is not None:
            if exited_at is None:
                exited_at = now
                # Leftover background processes of the group would hold the pipes open forever.
                _signal_group(pgid, signal.SIGKILL)
            if open_streams == 0 or now - exited_at > 2.0:
                break
            continue
        if stop_started is None and (cancel.is_set() or now >= deadline):
            cancelled = cancel.is_set()
            timed_out = not cancelled
            stop_started = now
            on_output("system", "cancelled: stopping the agent" if cancelled else f"timed out after {timeout_s:g} s")
            if on_stop is not None:
                on_stop()
            _signal_group(pgid, signal.SIGTERM)
        elif stop_started is not None and now - stop_started >= grace_s:
            _signal_group(pgid, signal.SIGKILL)
            proc.kill()

    proc.wait()
    code = proc.returncode
    if code is not None and code < 0:
        code = 128 - code  # shell convention for "killed by signal N"
    return SandboxResult(
        exit_code=code,
        timed_out=timed_out,
        cancelled=cancelled,
        output_truncated=truncated,
        duration_s=time.monotonic() - started,
    )


def prlimit_prefix(spec, *, nproc: bool = True) -> list[str]:
    """`prlimit ... --` so the limits hold from the first instruction of the sandboxed program on.

    prlimit(1) rather than preexec_fn: preexec_fn is unsafe in a threaded worker.
    """
    cpu_s = int(spec.timeout_s) + 5  # CPU seconds can only run out after the wall clock would have
    prefix = [
        "prlimit",
        f"--as={spec.memory_mb * 1024 * 1024}",
        f"--fsize={spec.max_file_bytes}",
        f"--cpu={cpu_s}",
        "--core=0",
    ]
    if nproc:
        prefix.append(f"--nproc={spec.max_processes}")
    return [*prefix, "--"]


def base_env(spec, *, home: str) -> dict[str, str]:
    """The whole environment a sandboxed command gets: a fixed minimum plus what the spec passes."""
    from app.engines.sandbox.base import DEFAULT_PATH

    env = {"PATH": DEFAULT_PATH, "HOME": home, "LANG": "C.UTF-8", "TERM": "dumb"}
    env.update(spec.env)
    return env
