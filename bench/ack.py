"""Benchmark acknowledgement: from a trigger webhook to 👀 and the progress comment, then the draft PR and its check run.

Run from the repository root:  uv run python bench/ack.py [--triggers 200] [--warmup 5] [--json out.json]

`draftsmith serve` runs as a separate process on its embedded default (SQLite in WAL mode, embedded Redis,
its worker processes) in a temporary directory; the fake GitHub (app/fakehub) runs inside this process so the
three acknowledgements can be seen in its state the moment they land. Triggers alternate between assigning
the bot on a fresh issue and commenting `/agent run` on one. The clock starts just before the person's API
call that makes the fake send the webhook (the fake delivers synchronously), so it also counts the fake's
own handling of that call. First feedback is the reaction and the progress comment; the draft PR (with its
empty start commit) and the check run on its head follow before the agent starts. One trigger at a time (closed loop); the task runs (`command: "true"`, no
changes) carry on in the background as they would in production.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._harness import FakeGitHub, Serve  # noqa: E402

REPO = "octo/bench"
CONFIG = 'agent: command\ncommand: "true"\n'
FIRST = ("reaction", "comment")
ACKS = (*FIRST, "draft_pr", "check_run")


class Observer:
    """Reads the fake's state (under its lock) for the three acknowledgements of one trigger."""

    def __init__(self, hub) -> None:
        self.state = hub.state
        self.bot = hub.app.bot.login

    def check_run_count(self) -> int:
        with self.state.lock:
            return sum(1 for c in self.state.check_runs.values() if c.repo == REPO)

    def seen(self, number: int, comment_id: int | None, check_runs_before: int) -> set[str]:
        found = set()
        with self.state.lock:
            issue = self.state.repos[REPO].issues[number]
            target = self.state.comments[comment_id].reactions if comment_id else issue.reactions
            if any(r.content == "eyes" and r.user.login == self.bot for r in target):
                found.add("reaction")
            recent = list(self.state.comments.values())[-10:]
            if any(c.repo == REPO and c.issue_number == number and c.user.login == self.bot
                   and "draftsmith:progress" in c.body for c in recent):
                found.add("comment")
            pulls = self.state.repos[REPO].pulls[-5:]
            if any(f"Closes #{number}." in (p.body or "") for p in pulls):
                found.add("draft_pr")
            if sum(1 for c in self.state.check_runs.values() if c.repo == REPO) > check_runs_before:
                found.add("check_run")
        return found


def one_trigger(person: httpx.Client, observer: Observer, bot: str, slug: str, kind: str,
                timeout: float = 30.0) -> dict[str, float]:
    """Open an issue (untimed), trigger, and time each acknowledgement; seconds from the trigger call."""
    number = person.post(f"/repos/{REPO}/issues", json={"title": "Bench", "body": ""}).json()["number"]
    before = observer.check_run_count()
    started = time.perf_counter()
    if kind == "assignment":
        resp = person.post(f"/repos/{REPO}/issues/{number}/assignees", json={"assignees": [bot]})
        comment_id = None
    else:
        resp = person.post(f"/repos/{REPO}/issues/{number}/comments", json={"body": "/agent run go"})
        comment_id = resp.json()["id"]
    resp.raise_for_status()
    times = {"delivered": time.perf_counter() - started}
    while len(times) < 1 + len(ACKS):
        now = time.perf_counter() - started
        for ack in observer.seen(number, comment_id, before) - times.keys():
            times[ack] = now
        if now > timeout:
            raise TimeoutError(f"trigger on #{number}: only {sorted(times)} after {timeout}s")
        time.sleep(0.001)
    times["first"] = max(times[a] for a in FIRST)
    times["all"] = max(times[a] for a in ACKS)
    return times


def _bot_calls(hub, triggers: int) -> list[tuple[str, float]]:
    """The bot's API calls by method and path shape, per trigger, most frequent first."""
    import re
    from collections import Counter

    counts: Counter[str] = Counter()
    for record in list(hub.state.requests):
        if record.actor == hub.app.bot.login or record.actor is None:
            counts[f"{record.method} {re.sub(r'/[0-9]+', '/N', record.path)}"] += 1
    return [(path, n / triggers) for path, n in counts.most_common(25)]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def summarise(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for key in ("delivered", *ACKS, "first", "all"):
        values = [s[key] * 1000 for s in samples]
        out[key] = {"p50_ms": statistics.median(values), "p99_ms": percentile(values, 99), "max_ms": max(values)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the samples and summary here")
    args = parser.parse_args()

    from app.fakehub.spec import load

    load()
    with tempfile.TemporaryDirectory(prefix="draftsmith-ack-") as tmp_name:
        tmp = Path(tmp_name)
        github = FakeGitHub(tmp, REPO, {"README.md": "# Bench\n", ".github/draftsmith.yml": CONFIG})
        hub, person = github.hub, github.person
        # 200 triggers must not meet the per-installation limits (default 200 a day, 5 running at once).
        serve = Serve(tmp / "serve", {**github.env, "DRAFTSMITH_MAX_TASKS_PER_DAY": "1000000",
                                      "DRAFTSMITH_MAX_CONCURRENT_TASKS": "1000000"})
        try:
            serve.start().wait_ready()
            hub.state.webhook_url = serve.webhook_url
            observer = Observer(hub)
            kinds = ["assignment", "comment"]
            for i in range(args.warmup):
                one_trigger(person, observer, hub.app.bot.login, hub.app.slug, kinds[i % 2])
            samples = []
            began = time.monotonic()
            for i in range(args.triggers):
                sample = one_trigger(person, observer, hub.app.bot.login, hub.app.slug, kinds[i % 2])
                sample["kind"] = kinds[i % 2]
                samples.append(sample)
            elapsed = time.monotonic() - began
            calls = _bot_calls(hub, args.warmup + args.triggers)
        finally:
            serve.stop(30)
            kept = Path(tempfile.gettempdir()) / "draftsmith-ack-serve.log"
            kept.write_bytes((serve.directory / "serve-1.log").read_bytes())
            print(f"serve's log: {kept}", file=sys.stderr)
            github.close()

    summary = summarise(samples)
    print(f"acknowledgement latency over {len(samples)} triggers (after {args.warmup} warm-up), "
          f"draftsmith serve on its embedded default, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}, {elapsed:.1f} s in all")
    for key, row in summary.items():
        label = {"delivered": "webhook answered", "first": "👀 and comment", "all": "draft PR and check"}.get(key, key)
        print(f"  {label:18} p50 {row['p50_ms']:7.1f} ms   p99 {row['p99_ms']:7.1f} ms   max {row['max_ms']:7.1f} ms")
    for kind in ("assignment", "comment"):
        values = [s["all"] * 1000 for s in samples if s["kind"] == kind]
        print(f"  {kind:18} p50 {statistics.median(values):7.1f} ms   p99 {percentile(values, 99):7.1f} ms")
    print("  GitHub calls Draftsmith made per trigger (intake and runs together):")
    for path, count in calls:
        print(f"    {count:5.2f}  {path}")
    for key, target in (("first", 1000), ("all", 1500)):
        verdict = "meets" if summary[key]["p99_ms"] < target else "MISSES"
        print(f"{key}: p99 {summary[key]['p99_ms']:.0f} ms {verdict} the target of {target} ms")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "samples": samples}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
