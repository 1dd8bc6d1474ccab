"""Benchmark a task end to end on the embedded default: orchestration overhead per task, and 50 issues at once.

Run from the repository root:  uv run python bench/e2e.py [--tasks 10] [--burst 50]

It starts the fake GitHub in this process (app/fakehub over HTTP on loopback, with its git server) and
`draftsmith serve` in a temporary directory (SQLite, embedded Redis, bubblewrap sandbox, default processes),
then assigns the bot on issues whose repository runs the built-in `command` agent (a one-line `sed`).
Overhead = (assignment sent -> check run completed on the fake GitHub) - the agent's own time (Run.agent_seconds).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._harness import FakeGitHub, Serve, wait  # noqa: E402

REPO = "bench/demo"
CONFIG = 'agent: command\ncommand: "sed -i s/tpyo/typo/ README.md && echo fixed"\n'


class RssSampler:
    """Peak resident memory of serve's web and worker processes, sampled every 0.2 s."""

    def __init__(self, root_pid: int) -> None:
        self.root = psutil.Process(root_pid)
        self.peak = {"web": 0, "worker": 0, "redis": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _kind(self, cmdline: str) -> str | None:
        if "uvicorn" in cmdline or "app.web.asgi" in cmdline:
            return "web"
        if "app.queue.worker" in cmdline:
            return "worker"
        if "redis" in cmdline:
            return "redis"
        return None

    def sample(self) -> None:
        totals = dict.fromkeys(self.peak, 0)
        try:
            children = self.root.children(recursive=True)
        except psutil.Error:  # serve is stopping
            return
        for child in children:
            try:
                kind = self._kind(" ".join(child.cmdline()))
                if kind:
                    totals[kind] += child.memory_info().rss
            except psutil.Error:
                pass
        for kind, value in totals.items():
            self.peak[kind] = max(self.peak[kind], value)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Bench:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.github = FakeGitHub(directory, REPO, {"README.md": "# Demo\n\nA tpyo here.\n",
                                                   ".github/draftsmith.yml": CONFIG})
        self.hub = self.github.hub
        self.serve = Serve(directory, self.github.env)
        self.hub.state.webhook_url = self.serve.webhook_url
        self.engine = None

    def start_serve(self) -> None:
        self.serve.start().wait_ready()
        from app.db import make_engine

        self.engine = make_engine(f"sqlite:///{self.directory / '.draftsmith' / 'draftsmith.db'}")

    def stop(self) -> None:
        self.serve.stop()
        if self.engine is not None:
            self.engine.dispose()
        self.github.close()

    # -- what a person does, and what they then see ---------------------------------------------------
    def open_issue(self, title: str) -> int:
        return self.github.open_issue(title)

    def assign(self, number: int) -> None:
        self.github.assign(number)

    def completed_checks(self) -> dict[int, str]:
        """Check run id -> conclusion, for completed check runs (not those left behind on an older head)."""
        return {c.id: c.conclusion for c in list(self.hub.state.check_runs.values())
                if c.status == "completed" and not (c.output.get("title") or "").startswith("Continued on")}

    def agent_seconds(self) -> dict[int, tuple[int, float | None, str]]:
        """issue number -> (check run id, agent seconds, task status and reason), from serve's database."""
        from sqlmodel import Session, select

        from app.models import Run, Task

        with Session(self.engine) as session:
            rows = session.exec(select(Task, Run).where(Run.task_id == Task.id)).all()
        return {task.issue_number: (task.check_run_id, run.agent_seconds,
                                    task.status + (f" ({task.status_reason})" if task.status_reason else ""))
                for task, run in rows}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def one_at_a_time(bench: Bench, count: int) -> list[tuple[float, float]]:
    """(total, agent) seconds per task, one task at a time."""
    results = []
    for i in range(count):
        number = bench.open_issue(f"Fix typo {i}")
        before = set(bench.completed_checks())
        sent = time.monotonic()
        bench.assign(number)
        wait(lambda: set(bench.completed_checks()) - before, 120, f"task for issue {number}")
        total = time.monotonic() - sent
        check_id, agent, status = bench.agent_seconds()[number]
        if status != "succeeded":
            raise RuntimeError(f"issue {number}: task {status}")
        results.append((total, agent or 0.0))
    return results


def burst(bench: Bench, count: int) -> dict:
    numbers = [bench.open_issue(f"Burst {i}") for i in range(count)]
    before = set(bench.completed_checks())
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(bench.assign, numbers))
    assigned = time.monotonic() - started
    wait(lambda: len(set(bench.completed_checks()) - before) >= count, 600, f"{count} tasks")
    elapsed = time.monotonic() - started
    rows = bench.agent_seconds()
    statuses = [rows[n][2] if n in rows else "missing" for n in numbers]
    # Pull requests on the fake GitHub that close one of these issues, ready for review.
    wanted = {f"Closes #{n}." for n in numbers}
    prs = [p for p in bench.hub.state.repos[REPO].pulls
           if any(line in wanted for line in (p.body or "").splitlines()) and not p.pull.draft]
    return {"elapsed": elapsed, "assigned": assigned, "succeeded": statuses.count("succeeded"),
            "other": [s for s in statuses if s != "succeeded"], "prs": len(prs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10, help="tasks run one at a time for the overhead")
    parser.add_argument("--burst", type=int, default=50, help="issues assigned at once")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="draftsmith-bench-") as tmp:
        bench = Bench(Path(tmp))
        try:
            started = time.monotonic()
            bench.start_serve()
            print(f"draftsmith serve ready in {time.monotonic() - started:.1f} s "
                  f"(embedded Redis, SQLite, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
            sampler = RssSampler(bench.serve.pid).start()

            bench.assign(bench.open_issue("Warm-up"))  # first-use costs (imports, App identity, token)
            wait(lambda: bench.completed_checks(), 120, "warm-up task")

            single = one_at_a_time(bench, args.tasks)
            overheads = [total - agent for total, agent in single]
            print(f"\none task at a time ({args.tasks} tasks):")
            print(f"  total      p50 {percentile([t for t, _ in single], 0.5):.2f} s   "
                  f"p99 {percentile([t for t, _ in single], 0.99):.2f} s")
            print(f"  agent      p50 {percentile([a for _, a in single], 0.5):.2f} s")
            print(f"  overhead   p50 {percentile(overheads, 0.5):.2f} s   p99 {percentile(overheads, 0.99):.2f} s"
                  f"   (target p50 < 2 s: {'met' if percentile(overheads, 0.5) < 2 else 'NOT met'})")

            result = burst(bench, args.burst)
            print(f"\n{args.burst} issues assigned at once (assignments sent in {result['assigned']:.1f} s):")
            print(f"  all check runs completed after {result['elapsed']:.1f} s "
                  f"({args.burst / result['elapsed']:.2f} tasks/s)")
            print(f"  succeeded {result['succeeded']}/{args.burst}, pull requests {result['prs']}/{args.burst}"
                  + (f", other: {result['other']}" if result["other"] else "")
                  + f"   (target all complete: {'met' if result['succeeded'] == args.burst else 'NOT met'})")

            sampler.stop()
            sampler.sample()
            peak = {k: v / 1e6 for k, v in sampler.peak.items()}
            print(f"\npeak RSS: web {peak['web']:.0f} MB, worker {peak['worker']:.0f} MB, "
                  f"embedded Redis {peak['redis']:.0f} MB")
        finally:
            bench.stop()


if __name__ == "__main__":
    main()
