"""Benchmark sandbox start-up: from BubblewrapSandbox.run() to a trivial command's completion.

Run from the repository root:  uv run python bench/sandbox.py [--runs 100]
Three cases, each running `true`: no egress; egress through the relay to a real EgressProxy already
listening (as the pipeline starts one per run, before the sandbox); and egress with the proxy started and
stopped inside the measurement. As root, each run also drops to a throwaway uid. Loopback only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.egress.policy import EgressPolicy  # noqa: E402
from app.egress.proxy import EgressProxy  # noqa: E402
from app.engines.sandbox import Egress, Forward, SandboxSpec  # noqa: E402
from app.engines.sandbox.bubblewrap import BubblewrapSandbox, find_bwrap  # noqa: E402


def measure(runs: int, cases: dict[str, Callable[[], None]]) -> dict[str, list[float]]:
    """Milliseconds per call of each case; the cases take turns, so a neighbour's load hits all alike."""
    for once in cases.values():
        once()  # warm the page cache and the interpreter's imports
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, once in cases.items():
            started = time.perf_counter()
            once()
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def report(name: str, times: list[float]) -> None:
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    print(f"{name:<34} p50 {statistics.median(ordered):6.1f} ms   p90 {p90:6.1f} ms   "
          f"min {ordered[0]:6.1f} ms   max {ordered[-1]:6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    binary = find_bwrap()
    if binary is None:
        sys.exit("bubblewrap is not installed (apt-get install -y bubblewrap)")
    sandbox = BubblewrapSandbox(binary)

    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        workspace = Path(tmp) / "workspace"
        workspace.mkdir()
        policy = EgressPolicy(operator_entries=("127.0.0.1:8799",))

        def egress(name: str) -> Egress:
            directory = Path(tmp) / name
            directory.mkdir(mode=0o700)
            return Egress(socket_path=directory / "proxy.sock", forwards=[Forward(8799, "127.0.0.1", 8799)])

        listening, per_run = egress("listening"), egress("per-run")

        def run(spec_egress: Egress | None) -> None:
            spec = SandboxSpec(argv=["true"], workspace=workspace, egress=spec_egress)
            result = sandbox.run(spec, on_output=lambda *_: None, cancel=threading.Event())
            assert result.exit_code == 0, result

        def with_proxy_per_run() -> None:
            with EgressProxy(per_run.socket_path, policy):
                run(per_run)

        mode = "root, throwaway uid" if os.geteuid() == 0 else "unprivileged, user namespace"
        print(f"bwrap {binary} ({mode}), {args.runs} runs each, load average {os.getloadavg()[0]:.2f}")
        with EgressProxy(listening.socket_path, policy):
            times = measure(args.runs, {
                "no egress": lambda: run(None),
                "egress (relay, proxy listening)": lambda: run(listening),
                "egress + proxy start/stop": with_proxy_per_run,
            })
        for name, samples in times.items():
            report(name, samples)
        print(f"load average after {os.getloadavg()[0]:.2f}")

if __name__ == "__main__":
    main()
