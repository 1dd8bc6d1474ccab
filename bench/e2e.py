"""Benchmark a task end to end: overhead one at a time, then bursts of issues at once, with a second installation.

Run from the repository root:
  uv run python bench/e2e.py [--tasks 10] [--burst 50 [1000 ...]] [--workers K] [--postgres]

It starts the fake GitHub in this process (app/fakehub over HTTP on loopback, with its git server) and
`draftsmith serve` in a temporary directory (SQLite and embedded Redis, or --postgres: an embedded
PostgreSQL; bubblewrap sandbox; --workers worker processes), then assigns the bot on issues whose
repositories run the built-in `command` agent (a one-line `sed`). The per-installation limits are raised
so that no burst is refused. Everything the bench times it reads from the fake's request log, once per
record (bench._harness.RequestLog), and from serve's database, never by rescanning the fake's state.

Overhead = (assignment sent -> check run completed on the fake GitHub) - the agent's own time (Run.agent_seconds).
Ack = assignment sent -> both the 👀 reaction and the progress comment exist on the fake GitHub.
B's wait = its run's start - the first end of any run after B's run was queued (Run.* in serve's database).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._harness import FakeGitHub, RequestLog, Serve, embedded_postgres, wait  # noqa: E402

REPO = "bench/demo"
OTHER = "other/demo"  # installation B: another account, so another installation
CONFIG = 'agent: command\ncommand: "sed -i s/tpyo/typo/ README.md && echo fixed"\n'
FILES = {"README.md": "# Demo\n\nA tpyo here.\n", ".github/draftsmith.yml": CONFIG}
# No burst may meet the per-installation limits (app/settings.py): over them a trigger is refused.
NO_LIMITS = {"DRAFTSMITH_MAX_TASKS_PER_DAY": "100000000", "DRAFTSMITH_MAX_CONCURRENT_TASKS": "100000000"}
POLL = 0.25  # seconds between the bench's looks at the request log

_ISSUE_WRITE = re.compile(r"^/repos/([^/]+/[^/]+)/issues/(\d+)/(reactions|comments)$")
_CHECK_RUN = re.compile(r"^/repos/([^/]+/[^/]+)/check-runs(?:/(\d+))?$")


class RssSampler:
    """Peak resident memory of serve's web and worker processes, sampled every 0.5 s."""

    def __init__(self, root_pid: int) -> None:
        self.root = psutil.Process(root_pid)
        self.peak = {"web": 0, "worker": 0, "redis": 0}
        self.largest = dict.fromkeys(self.peak, 0)  # the largest single process of each kind
        self.processes = dict.fromkeys(self.peak, 0)
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

    def reset(self) -> None:
        self.peak = dict.fromkeys(self.peak, 0)
        self.largest = dict.fromkeys(self.peak, 0)
        self.processes = dict.fromkeys(self.peak, 0)

    def sample(self) -> None:
        totals = dict.fromkeys(self.peak, 0)
        counts = dict.fromkeys(self.peak, 0)
        try:
            children = self.root.children(recursive=True)
        except psutil.Error:  # serve is stopping
            return
        for child in children:
            try:
                kind = self._kind(" ".join(child.cmdline()))
                if kind:
                    rss = child.memory_info().rss
                    totals[kind] += rss
                    counts[kind] += 1
                    self.largest[kind] = max(self.largest.get(kind, 0), rss)
            except psutil.Error:
                pass
        for kind, value in totals.items():
            self.peak[kind] = max(self.peak[kind], value)
            self.processes[kind] = max(self.processes.get(kind, 0), counts[kind])

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Activity:
    """What the bot did on the fake GitHub, from its request log: 👀, progress comments, completed check runs.

    Each record is parsed once; times are the fake's (time.monotonic() when it had answered the call)."""

    def __init__(self, hub) -> None:
        self.log = RequestLog(hub)
        self.bot = hub.app.bot.login
        self.reacted: dict[tuple[str, int], float] = {}
        self.commented: dict[tuple[str, int], float] = {}
        self.completed: dict[str, dict[object, tuple[float, str]]] = {}  # repo -> check run -> (at, conclusion)
        self._lock = threading.Lock()

    def poll(self) -> Activity:
        with self._lock:
            for record in self.log.new():
                if record.actor != self.bot or record.status >= 300 or not isinstance(record.body, dict):
                    continue
                if record.method == "POST" and (found := _ISSUE_WRITE.match(record.path)):
                    key = (found.group(1), int(found.group(2)))
                    if found.group(3) == "reactions" and record.body.get("content") == "eyes":
                        self.reacted.setdefault(key, record.at)
                    elif found.group(3) == "comments" and "draftsmith:progress" in (record.body.get("body") or ""):
                        self.commented.setdefault(key, record.at)
                elif record.method in ("POST", "PATCH") and (found := _CHECK_RUN.match(record.path)):
                    body = record.body
                    if body.get("status") != "completed" and not body.get("conclusion"):
                        continue
                    if ((body.get("output") or {}).get("title") or "").startswith("Continued on"):
                        continue  # left behind on an older head, not a task's end
                    check = int(found.group(2)) if found.group(2) else ("created", id(record))
                    self.completed.setdefault(found.group(1), {}).setdefault(check, (record.at, body.get("conclusion")))
        return self

    def acked(self, repo: str, number: int) -> float | None:
        """When both the 👀 and the progress comment were there, or None."""
        reacted, commented = self.reacted.get((repo, number)), self.commented.get((repo, number))
        return max(reacted, commented) if reacted is not None and commented is not None else None

    def completions(self, repo: str = REPO) -> int:
        return len(self.completed.get(repo, {}))

    def completion_times(self, repo: str = REPO) -> list[float]:
        return sorted(at for at, _ in self.completed.get(repo, {}).values())


class Bench:
    def __init__(self, directory: Path, settings: dict[str, str] | None = None,
                 database_url: str | None = None) -> None:
        self.directory = directory
        self.github = FakeGitHub(directory, REPO, FILES)
        self.hub = self.github.hub
        self.other_installation = self.github.add_repo(OTHER, FILES)
        self.database_url = database_url
        extra = {"DATABASE_URL": database_url} if database_url else {}
        self.serve = Serve(directory, {**self.github.env, **NO_LIMITS, **extra, **(settings or {})})
        self.hub.state.webhook_url = self.serve.webhook_url
        self.activity = Activity(self.hub)
        self.engine = None

    def start_serve(self) -> None:
        self.serve.start().wait_ready()
        from app.db import make_engine

        url = self.database_url or f"sqlite:///{self.directory / '.draftsmith' / 'draftsmith.db'}"
        self.engine = make_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))

    def stop(self) -> None:
        self.serve.stop()
        if self.engine is not None:
            self.engine.dispose()
        self.github.close()

    # -- what a person does, and what they then see ---------------------------------------------------
    def open_issue(self, title: str, repo: str = REPO) -> int:
        return self.github.open_issue(title, repo=repo)

    def assign(self, number: int, repo: str = REPO) -> None:
        self.github.assign(number, repo=repo)

    def completed_checks(self, repo: str = REPO) -> dict[object, str]:
        """Check run id -> conclusion, for `repo`'s completed check runs (not those left behind on an older head)."""
        self.activity.poll()
        return {check: conclusion for check, (_, conclusion) in self.activity.completed.get(repo, {}).items()}

    def wait_completions(self, repo: str, count: int, timeout: float, what: str) -> None:
        wait(lambda: self.activity.poll().completions(repo) >= count, timeout, what, every=POLL)

    def agent_seconds(self, repo: str = REPO) -> dict[int, tuple[int, float | None, str]]:
        """issue number -> (check run id, agent seconds, task status and reason) in `repo`, from serve's database."""
        from sqlmodel import Session, select

        from app.models import Run, Task

        with Session(self.engine) as session:
            rows = session.exec(select(Task, Run).where(Run.task_id == Task.id, Task.repo_full_name == repo)).all()
        return {task.issue_number: (task.check_run_id, run.agent_seconds,
                                    task.status + (f" ({task.status_reason})" if task.status_reason else ""))
                for task, run in rows}

    def queued_runs(self) -> int:
        from sqlmodel import Session, func, select

        from app.models import Run

        with Session(self.engine) as session:
            return session.exec(select(func.count()).select_from(Run).where(Run.status == "queued")).one()

    def wait_for_slot(self, repo: str, number: int) -> tuple[float | None, dict[str, datetime | None]]:
        """(seconds from the first run ending after this issue's run was queued to its start, its timeline).

        0 when the run started before any other ended (a slot was free); None when it has not started.
        The timeline holds the run's queued_at, started_at, ended_at and `freed`, that first end."""
        from sqlmodel import Session, func, select

        from app.models import Run, Task

        with Session(self.engine) as session:
            run = session.exec(select(Run).join(Task, Run.task_id == Task.id)
                               .where(Task.repo_full_name == repo, Task.issue_number == number)
                               .order_by(Run.id)).first()
            if run is None:
                return None, {}
            freed = session.exec(select(func.min(Run.ended_at)).where(Run.ended_at >= run.queued_at,
                                                                      Run.id != run.id)).one()
        timeline = {"queued": run.queued_at, "freed": freed, "started": run.started_at, "ended": run.ended_at}
        if run.started_at is None:
            return None, timeline
        if freed is None or run.started_at <= freed:
            return 0.0, timeline
        return (run.started_at - freed).total_seconds(), timeline


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def one_task(bench: Bench, title: str, repo: str = REPO, timeout: float = 120) -> tuple[int, float]:
    """(issue, seconds from assigning the bot on that fresh issue in `repo` to its check run completing)."""
    number = bench.open_issue(title, repo)
    before = bench.activity.poll().completions(repo)
    sent = time.monotonic()
    bench.assign(number, repo)
    bench.wait_completions(repo, before + 1, timeout, f"task for {repo}#{number}")
    return number, bench.activity.completion_times(repo)[-1] - sent


def one_at_a_time(bench: Bench, count: int) -> list[tuple[float, float]]:
    """(total, agent) seconds per task, one task at a time."""
    results = []
    for i in range(count):
        number, total = one_task(bench, f"Fix typo {i}")
        _check, agent, status = bench.agent_seconds()[number]
        if status != "succeeded":
            raise RuntimeError(f"issue {number}: task {status}")
        results.append((total, agent or 0.0))
    return results


def burst(bench: Bench, count: int, idle_b: float | None = None, timeout: float | None = None) -> dict:
    """Assign the bot on `count` issues at once in A; once A's queue is deep, on one in B (when idle_b is given)."""
    numbers = [bench.open_issue(f"Burst {i}") for i in range(count)]
    b_number = bench.open_issue("Meanwhile in B", OTHER) if idle_b is not None else None
    activity = bench.activity.poll()
    before = activity.completions(REPO)
    before_b = activity.completions(OTHER)
    sent: dict[int, float] = {}

    def assign(number: int) -> None:
        sent[number] = time.monotonic()
        bench.assign(number)

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(assign, numbers))
    assigned = time.monotonic() - started
    result: dict = {"assigned": assigned}
    deadline = started + (timeout or max(600.0, 3.0 * count))

    if b_number is not None:
        # "Deep": every assignment sent and half of them queued behind the running ones (or a minute gone).
        try:
            wait(lambda: bench.queued_runs() >= count // 2, 60, "A's queue deep", every=POLL)
        except TimeoutError:
            pass
        result["queued_before_b"] = bench.queued_runs()
        b_sent, b_sent_at = time.monotonic(), datetime.now(timezone.utc)
        bench.assign(b_number, OTHER)

    try:
        bench.wait_completions(REPO, before + count, max(1.0, deadline - time.monotonic()), f"{count} tasks")
        timed_out = False
    except TimeoutError:
        timed_out = True
    ends = activity.completion_times(REPO)[before:]
    elapsed = (ends[-1] if ends else time.monotonic()) - started
    if b_number is not None:
        try:
            bench.wait_completions(OTHER, before_b + 1, max(30.0, deadline - time.monotonic()), "B's task")
            result["b_total"] = activity.completion_times(OTHER)[-1] - b_sent
        except TimeoutError:
            result["b_total"] = None
        result["b_wait"], timeline = bench.wait_for_slot(OTHER, b_number)
        result["b_idle"] = idle_b
        acked = activity.poll().acked(OTHER, b_number)
        # Seconds after B's assignment; serve's database keeps naive UTC on SQLite.
        result["b_timeline"] = {"acknowledged": None if acked is None else acked - b_sent, **{
            key: None if at is None else (at.replace(tzinfo=at.tzinfo or timezone.utc) - b_sent_at).total_seconds()
            for key, at in timeline.items()}}

    acks = [activity.acked(REPO, n) for n in numbers]
    rows = bench.agent_seconds()
    statuses = [rows[n][2] if n in rows else "missing" for n in numbers]
    # Pull requests on the fake GitHub that close one of these issues, ready for review.
    wanted = {f"Closes #{n}." for n in numbers}
    with bench.hub.state.lock:
        pulls = [p for p in bench.hub.state.repos[REPO].issues.values() if p.pull is not None]
        prs = [p for p in pulls if any(line in wanted for line in (p.body or "").splitlines()) and not p.pull.draft]
    result.update({
        "elapsed": elapsed, "timed_out": timed_out, "completed": len(ends),
        "succeeded": statuses.count("succeeded"), "other": [s for s in statuses if s != "succeeded"], "prs": len(prs),
        "ack": [a - sent[n] for a, n in zip(acks, numbers) if a is not None],
        "unacked": sum(a is None for a in acks),
    })
    return result


def report_burst(count: int, result: dict, peak: dict[str, float], processes: dict[str, int],
                 largest: dict[str, float]) -> None:
    rate = result["completed"] / result["elapsed"]
    print(f"\n{count} issues assigned at once (assignments sent in {result['assigned']:.1f} s, "
          f"load average {os.getloadavg()[0]:.1f} at the end):")
    print(f"  {'all' if not result['timed_out'] else 'ONLY ' + str(result['completed'])} check runs completed "
          f"after {result['elapsed']:.1f} s ({rate:.2f} tasks/s)")
    print(f"  succeeded {result['succeeded']}/{count}, pull requests {result['prs']}/{count}"
          + (f", other: {sorted(set(result['other']))[:5]} ({len(result['other'])})" if result["other"] else "")
          + f"   (target all complete: {verdict(result['succeeded'] == count)})")
    acks = result["ack"]
    if acks:
        p99 = percentile(acks, 0.99)
        print(f"  ack (👀 and progress comment)   p50 {percentile(acks, 0.5):.2f} s   p90 {percentile(acks, 0.9):.2f} s"
              f"   p99 {p99:.2f} s   max {max(acks):.2f} s"
              + (f"   ({result['unacked']} never acknowledged)" if result["unacked"] else "")
              + f"   (target p99 < 10 s: {verdict(p99 < 10 and not result['unacked'])})")
    if "b_idle" in result:
        wait_b, total_b, idle_b = result["b_wait"], result["b_total"], result["b_idle"]
        print(f"  installation B, one task assigned with {result['queued_before_b']} runs queued in A:")
        print(f"    start after a slot freed  {'never started' if wait_b is None else f'{wait_b:.1f} s'}"
              f"   (target within 5 s: {verdict(wait_b is not None and wait_b <= 5)})")
        print(f"    total                     {'never finished' if total_b is None else f'{total_b:.1f} s'}"
              f" vs {idle_b:.1f} s idle"
              f"   (target under twice idle: {verdict(total_b is not None and total_b < 2 * idle_b)})")
        print("    after its assignment: " + ", ".join(
            f"{key} {'-' if at is None else f'{at:+.1f} s'}" for key, at in result["b_timeline"].items())
            + "  (freed: the first run to end after B's run was queued)")
    print(f"  peak RSS: web {peak['web']:.0f} MB ({processes['web']} process(es), largest {largest['web']:.0f} MB), "
          f"worker {peak['worker']:.0f} MB ({processes['worker']}, largest {largest['worker']:.0f} MB), "
          f"embedded Redis {peak['redis']:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10, help="tasks run one at a time for the overhead (0: skip)")
    parser.add_argument("--burst", type=int, nargs="+", default=[50],
                        help="issues assigned at once; several sizes run one after the other on the same serve")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (DRAFTSMITH_WORKER_PROCESSES)")
    parser.add_argument("--postgres", action="store_true", help="serve on an embedded PostgreSQL (DATABASE_URL)")
    parser.add_argument("--no-other", action="store_true", help="skip installation B's task")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows in a log file as each part ends

    settings = {"DRAFTSMITH_WORKER_PROCESSES": str(args.workers)} if args.workers else {}
    with tempfile.TemporaryDirectory(prefix="draftsmith-bench-") as tmp, ExitStack() as stack:
        database_url = stack.enter_context(embedded_postgres()) if args.postgres else None
        bench = Bench(Path(tmp), settings, database_url)
        try:
            started = time.monotonic()
            load = os.getloadavg()
            bench.start_serve()
            print(f"draftsmith serve ready in {time.monotonic() - started:.1f} s "
                  f"({'embedded PostgreSQL' if args.postgres else 'SQLite'}, embedded Redis, "
                  f"{args.workers or 1} worker process(es), {os.cpu_count()} CPUs, "
                  f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})")
            sampler = RssSampler(bench.serve.pid).start()

            one_task(bench, "Warm-up")  # first-use costs (imports, App identity, token)
            one_task(bench, "Warm-up", OTHER)
            idle_b = None if args.no_other else one_task(bench, "B alone", OTHER)[1]

            if args.tasks:
                single = one_at_a_time(bench, args.tasks)
                overheads = [total - agent for total, agent in single]
                print(f"\none task at a time ({args.tasks} tasks):")
                print(f"  total      p50 {percentile([t for t, _ in single], 0.5):.2f} s   "
                      f"p99 {percentile([t for t, _ in single], 0.99):.2f} s")
                print(f"  agent      p50 {percentile([a for _, a in single], 0.5):.2f} s")
                print(f"  overhead   p50 {percentile(overheads, 0.5):.2f} s   p99 {percentile(overheads, 0.99):.2f} s"
                      f"   (target p50 < 2 s: {verdict(percentile(overheads, 0.5) < 2)})")
            if idle_b is not None:
                print(f"\ninstallation B's task alone: {idle_b:.1f} s")

            results = []
            for count in args.burst:
                sampler.sample()
                sampler.reset()
                result = burst(bench, count, idle_b)
                sampler.sample()
                peak = {k: v / 1e6 for k, v in sampler.peak.items()}
                report_burst(count, result, peak, sampler.processes, {k: v / 1e6 for k, v in sampler.largest.items()})
                results.append((count, result, peak))
            if len(results) > 1:
                first_count, first, first_peak = results[0]
                base = first["completed"] / first["elapsed"]
                for count, result, peak in results[1:]:
                    rate = result["completed"] / result["elapsed"]
                    print(f"\n{count} against {first_count} on this run: throughput {rate / base:.0%} of it "
                          f"(target within 20%: {verdict(rate >= 0.8 * base)}); web RSS {peak['web'] / first_peak['web']:.0%}, "
                          f"worker RSS {peak['worker'] / first_peak['worker']:.0%} "
                          f"(target within 20%: {verdict(max(peak['web'] / first_peak['web'], peak['worker'] / first_peak['worker']) <= 1.2)})")
            sampler.stop()
        finally:
            bench.stop()


if __name__ == "__main__":
    main()
