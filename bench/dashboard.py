"""Benchmark the dashboard's task list: server time to render /dashboard/ over 10,000 tasks (issue 21: p50 < 100 ms).

Run from the repository root:  uv run python bench/dashboard.py [--tasks 10000] [--requests 200] [--json out.json]

A SQLite database in a temporary directory gets `--tasks` finished tasks (one run each, with cost and times)
spread over 20 repositories of one installation; the fake GitHub (app/fakehub) serves the sign-in and the
user-token APIs. A person who reaches every repository signs in, then the list is asked for `--requests`
times each in three shapes: the first page, a page deep in the list, and filtered by repository and status.
Requests go to the ASGI app in this process (httpx's ASGITransport), so the times are the server's own:
routing, the session, the (cached) reach, the queries and the template, without a network in between.
What the person reaches is cached for 60 s after the first request, as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REPOS = [f"octo/repo-{i:02d}" for i in range(20)]
AGENTS = ["claude-code", "codex", "aider", "mini-swe-agent"]
STATUSES = ["succeeded"] * 6 + ["failed", "cancelled", "timed_out", "needs_attention"]


def seed(engine, installation_id: int, count: int) -> None:
    from sqlalchemy import insert

    from app.models import Run, Task, utcnow

    now = utcnow()
    tasks, runs = [], []
    for i in range(count):
        created = now - timedelta(minutes=count - i)
        status = STATUSES[i % len(STATUSES)]
        tasks.append({"id": i + 1, "installation_id": installation_id, "repo_full_name": REPOS[i % len(REPOS)],
                      "issue_number": i // len(REPOS) + 1, "title": f"Fix issue {i}", "requester": f"user{i % 7}",
                      "trigger": "assignment", "agent": AGENTS[i % len(AGENTS)], "status": status,
                      "pr_number": i // len(REPOS) + 1000, "created_at": created, "updated_at": created,
                      "finished_at": created + timedelta(seconds=90), "instruction": "", "mode": "run",
                      "runner": "sandbox", "is_pull_request": False})
        runs.append({"task_id": i + 1, "attempt": 1, "status": status, "stage": "pull_request", "queued_at": created,
                     "started_at": created + timedelta(seconds=2), "ended_at": created + timedelta(seconds=90),
                     "cost_usd": 0.01 * (i % 50), "cancel_requested": False})
    with engine.begin() as conn:
        conn.execute(insert(Task), tasks)
        conn.execute(insert(Run), runs)


async def sign_in(client: httpx.AsyncClient, fakehub_url: str, login: str) -> None:
    start = await client.get("/dashboard/login")
    params = {k: v[0] for k, v in parse_qs(urlparse(start.headers["location"]).query).items()}
    async with httpx.AsyncClient() as github:
        authorized = await github.post(f"{fakehub_url}/login/oauth/authorize", data={**params, "login": login})
    callback = urlparse(authorized.headers["location"])
    done = await client.get(f"{callback.path}?{callback.query}")
    assert done.status_code == 303, done.text


async def measure(client: httpx.AsyncClient, path: str, requests: int) -> dict:
    first = await client.get(path)  # fills the reach cache
    assert first.status_code == 200 and "table" in first.text, first.text[:500]
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = await client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200
    times.sort()
    return {"path": path, "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[int(len(times) * 0.95) - 1], 1), "max_ms": round(times[-1], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from app.db import make_engine
    from app.fakehub.background import BackgroundServer
    from app.fakehub.hub import FakeHub
    from app.fakehub.server import create_fakehub
    from app.migrate import upgrade
    from app.runtime import Runtime
    from app.settings import Settings
    from app.web.app import create_app

    with tempfile.TemporaryDirectory(prefix="draftsmith-bench-dashboard-") as tmp:
        directory = Path(tmp)
        hub = FakeHub(git_root=directory / "git")
        for full_name in REPOS:
            owner, name = full_name.split("/")
            hub.create_repo(owner, name)
        hub.add_user("alice", permissions={full_name: "write" for full_name in REPOS})
        installation_id = hub.state.installation_for(REPOS[0]).id
        key = directory / "app.pem"
        key.write_bytes(hub.private_key_pem)
        server = BackgroundServer(create_fakehub(hub)).start()
        try:
            url = f"sqlite:///{directory / 'draftsmith.db'}"
            engine = make_engine(url)
            upgrade(engine)
            seed(engine, installation_id, args.tasks)
            settings = Settings(GITHUB_APP_ID=hub.app.id, GITHUB_PRIVATE_KEY_PATH=str(key),
                                GITHUB_WEBHOOK_SECRET=hub.app.webhook_secret, GITHUB_API_URL=server.url,
                                GITHUB_CLIENT_ID=hub.app.client_id, GITHUB_CLIENT_SECRET=hub.app.client_secret,
                                DATABASE_URL=url, DRAFTSMITH_DATA_DIR=str(directory / "data"),
                                DRAFTSMITH_PUBLIC_URL="http://dashboard.bench", DRAFTSMITH_LOG_LEVEL="warning")
            runtime = Runtime(settings, engine=engine)
            app = create_app(settings, runtime=runtime)
            app.state.runtime = runtime  # ASGITransport runs no lifespan, which would set it

            async def run() -> list[dict]:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://dashboard.bench") as client:
                    await sign_in(client, server.url, "alice")
                    deep = args.tasks // 50 // 2
                    return [await measure(client, path, args.requests) for path in (
                        "/dashboard/", f"/dashboard/?page={deep}",
                        f"/dashboard/?repo={REPOS[3]}&status=succeeded&agent={AGENTS[3]}")]

            results = asyncio.run(run())
        finally:
            server.stop()
            hub.close()
    report = {"tasks": args.tasks, "requests": args.requests, "results": results}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
