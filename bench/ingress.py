"""Benchmark webhook ingress: `draftsmith serve` against a bare HMAC-verifying Starlette endpoint, same web processes.

Run from the repository root:  uv run python bench/ingress.py [--web-processes 2] [--seconds 10]
Needs `wrk` (apt-get install -y wrk) for the saturation runs; everything stays on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._harness import DRAFTSMITH, free_port, wait_healthy  # noqa: E402

WEBHOOK_PATH = "/api/github/webhooks"


# -- the bare endpoint: the ceiling for our stack (uvicorn + Starlette + HMAC), storing nothing ----------------
def make_bare_app():
    """uvicorn factory for the comparison endpoint: verify X-Hub-Signature-256, answer 202."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from app.events.signature import verify

    secret = os.environ["BENCH_WEBHOOK_SECRET"]

    async def webhook(request: Request) -> Response:
        body = await request.body()
        if not verify(body, secret, request.headers.get("x-hub-signature-256")):
            return Response(status_code=401)
        return Response(b'{"ok":true}', status_code=202, media_type="application/json")

    return Starlette(routes=[Route(WEBHOOK_PATH, webhook, methods=["POST"])])


# -- processes -----------------------------------------------------------------------------------
def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def web_rss_mb(root_pid: int) -> float:
    """Resident memory of the processes that answer HTTP (uvicorn workers), in MB."""
    total = 0
    for child in psutil.Process(root_pid).children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
            # uvicorn --workers N spawns workers through multiprocessing; serve runs `-m uvicorn` per process.
            if "uvicorn" in cmdline or "multiprocessing" in cmdline or "app.web.asgi" in cmdline:
                total += child.memory_info().rss
        except psutil.Error:
            pass
    return total / 1e6


def cpu_seconds(root_pid: int) -> dict[str, float]:
    """CPU time used so far by the web processes and by the rest (workers, Redis) under `root_pid`."""
    used = {"web": 0.0, "other": 0.0, "redis": 0.0}
    for child in psutil.Process(root_pid).children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
            times = child.cpu_times()
            kind = "web" if "uvicorn" in cmdline or "multiprocessing" in cmdline or "app.web.asgi" in cmdline else "other"
            used[kind] += times.user + times.system
            if "redis" in cmdline:
                used["redis"] += times.user + times.system
        except psutil.Error:
            pass
    return used


def signal_workers(root_pid: int, signum: int) -> None:
    """Send `signum` to serve's queue workers (not web, not Redis): SIGSTOP/SIGCONT around a run measures
    ingress alone (verify, record, enqueue), with processing deferred, as a burst larger than the workers
    keep up with would be."""
    for child in psutil.Process(root_pid).children(recursive=True):
        try:
            if "app.queue.worker" in " ".join(child.cmdline()):
                os.kill(child.pid, signum)
        except (psutil.Error, OSError):
            pass


def start_serve(directory: Path, port: int, secret: str, web_processes: int, extra: list[str]) -> subprocess.Popen:
    (directory / ".env").write_text(
        f"GITHUB_WEBHOOK_SECRET={secret}\nDRAFTSMITH_PORT={port}\nDRAFTSMITH_WEB_PROCESSES={web_processes}\n"
        "DRAFTSMITH_LOG_LEVEL=warning\n" + "".join(f"{setting}\n" for setting in extra)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "DRAFTSMITH_"))}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    return subprocess.Popen([DRAFTSMITH, "serve"], cwd=directory, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(directory / "serve.log", "wb"))


def start_bare(port: int, secret: str, web_processes: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, BENCH_WEBHOOK_SECRET=secret, PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-m", "uvicorn", "bench.ingress:make_bare_app", "--factory", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(web_processes), "--no-access-log", "--log-level", "warning"]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "wb"),
                            start_new_session=True)


# -- load: wrk at saturation ------------------------------------------------------------------------
WRK_SCRIPT = textwrap.dedent("""
    local f = io.open(os.getenv("BENCH_BODY_FILE"), "rb")
    wrk.method = "POST"
    wrk.body = f:read("*a")
    f:close()
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["User-Agent"] = "GitHub-Hookshot/bench"
    wrk.headers["X-GitHub-Event"] = "issues"
    wrk.headers["X-Hub-Signature-256"] = os.getenv("BENCH_SIGNATURE")
    local run = os.getenv("BENCH_RUN_ID")
    local threads = {}
    local n = 0

    function setup(thread)
      n = n + 1
      thread:set("tid", n)
      table.insert(threads, thread)
    end

    local counter = 0
    request = function()
      counter = counter + 1
      -- A fresh X-GitHub-Delivery per request, so every one is a new delivery to record.
      wrk.headers["X-GitHub-Delivery"] = run .. "-" .. tid .. "-" .. counter
      return wrk.format(nil, nil, wrk.headers, nil)
    end

    function done(summary, latency, requests)
      io.write(string.format(
        'WRKJSON {"requests": %d, "seconds": %f, "p50_ms": %f, "p99_ms": %f, "errors": %d, "non2xx": %d}\\n',
        summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        summary.errors.status))
    end
""")


def run_wrk(url: str, body_file: Path, signature: str, seconds: int, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    env = dict(os.environ, BENCH_BODY_FILE=str(body_file), BENCH_SIGNATURE=signature, BENCH_RUN_ID=uuid.uuid4().hex)
    argv = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "5s", "-s", script.name,
            url + WEBHOOK_PATH]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60).stdout
    os.unlink(script.name)
    line = next(l for l in out.splitlines() if l.startswith("WRKJSON "))
    result = json.loads(line.removeprefix("WRKJSON "))
    result["rps"] = result["requests"] / result["seconds"]
    return result


# -- load: a steady rate (open loop), measured from when each request was due ---------------------------
async def _steady(host: str, port: int, body: bytes, signature: str, rate: int, seconds: float, pool: int) -> dict:
    head = (
        f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"User-Agent: GitHub-Hookshot/bench\r\nX-GitHub-Event: issues\r\nX-Hub-Signature-256: {signature}\r\n"
        f"Content-Length: {len(body)}\r\n"
    ).encode()
    idle: asyncio.Queue = asyncio.Queue()
    for _ in range(pool):
        idle.put_nowait(await asyncio.open_connection(host, port))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    run = uuid.uuid4().hex

    async def one(i: int, due: float) -> None:
        reader, writer = await idle.get()
        writer.write(head + f"X-GitHub-Delivery: {run}-{i}\r\n\r\n".encode() + body)
        status_line = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if length:
            await reader.readexactly(length)
        latencies.append(time.perf_counter() - due)
        status = int(status_line.split()[1])
        statuses[status] = statuses.get(status, 0) + 1
        idle.put_nowait((reader, writer))

    loop = asyncio.get_running_loop()
    tasks = []
    start = time.perf_counter() + 0.05
    total = int(rate * seconds)
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not idle.empty():
        _, writer = idle.get_nowait()
        writer.close()
    latencies.sort()
    return {
        "requests": total,
        "rps": total / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "statuses": statuses,
    }


def run_steady(url: str, body: bytes, signature: str, rate: int, seconds: float) -> dict:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    host, port = url.removeprefix("http://").split(":")
    return asyncio.run(_steady(host, int(port), body, signature, rate, seconds, pool=32))


# -- the run -------------------------------------------------------------------------------------
def measure(name: str, url: str, root_pid: int, body: bytes, body_file: Path, signature: str, args) -> dict:
    """Warm up, a steady 1000 req/s, saturation, then 1000 req/s again right after the burst.

    The first steady run is the steady state (the workers keep up); the second is what a burst
    leaves behind: the workers draining tens of thousands of deliveries beside the answers.
    """
    print(f"\n== {name} ({url})", flush=True)
    warm = run_wrk(url, body_file, signature, 2, args.connections)  # warm up: imports, caches, connection pools
    time.sleep(2)  # let the workers catch up with the warm-up burst
    steady = run_steady(url, body, signature, args.rate, args.seconds)
    print(f"steady {args.rate} req/s ({args.seconds}s): achieved {steady['rps']:.0f} req/s, "
          f"p50 {steady['p50_ms']:.2f} ms, p99 {steady['p99_ms']:.2f} ms, statuses {steady['statuses']}", flush=True)
    cpu_before = cpu_seconds(root_pid)
    saturation = run_wrk(url, body_file, signature, args.seconds, args.connections)
    cpu = {k: v - cpu_before[k] for k, v in cpu_seconds(root_pid).items()}
    rss = web_rss_mb(root_pid)
    print(f"saturation ({args.connections} connections, {args.seconds}s): {saturation['rps']:.0f} req/s, "
          f"p50 {saturation['p50_ms']:.2f} ms, p99 {saturation['p99_ms']:.2f} ms, "
          f"errors {saturation['errors']}, non-2xx {saturation['non2xx']}", flush=True)
    # Where the two cores went: the answers' own cost, and what the workers (and Redis) took beside them.
    print(f"CPU during saturation: web processes {cpu['web'] / args.seconds:.0%} of a core "
          f"({cpu['web'] * 1000 / max(1, saturation['requests']):.2f} ms per request), "
          f"workers and Redis {cpu['other'] / args.seconds:.0%} (Redis {cpu['redis'] / args.seconds:.0%}); "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    after = run_steady(url, body, signature, args.rate, args.seconds)
    print(f"steady {args.rate} req/s right after saturation: achieved {after['rps']:.0f} req/s, "
          f"p50 {after['p50_ms']:.2f} ms, p99 {after['p99_ms']:.2f} ms, statuses {after['statuses']}", flush=True)
    print(f"web processes RSS: {rss:.0f} MB", flush=True)
    accepted = (sum(r["requests"] - r["non2xx"] for r in (warm, saturation))
                + steady["statuses"].get(202, 0) + after["statuses"].get(202, 0))
    return {"saturation": saturation, "steady": steady, "after": after, "rss_mb": rss, "accepted": accepted}


def count_deliveries(directory: Path) -> int:
    import sqlite3

    with sqlite3.connect(directory / ".draftsmith" / "draftsmith.db") as conn:
        return conn.execute("select count(*) from deliveries").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--web-processes", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--pause-workers", action="store_true",
                        help="measure ingress alone: stop serve's queue workers during the run, resume after")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a line for serve's .env, e.g. DRAFTSMITH_WORKER_NICENESS=0 (repeatable)")
    parser.add_argument("--bare-rps", type=float, default=None, metavar="RPS",
                        help="skip the bare endpoint and use this figure for it (quicker runs while iterating)")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from app.events.signature import sign
    from tests.support.npm import webhook_examples_path

    index = json.loads(webhook_examples_path().read_text())
    payload = next(e for entry in index if entry["name"] == "issues" for e in entry["examples"]
                   if e.get("action") == "assigned")
    payload["installation"] = {"id": 1, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="}
    body = json.dumps(payload).encode()
    secret = secrets.token_hex(20)
    signature = sign(body, secret)
    print(f"payload: issues.assigned, {len(body)} bytes; {args.web_processes} web process(es); "
          f"{os.cpu_count()} CPUs; load generator and servers share this machine")

    with tempfile.TemporaryDirectory(prefix="draftsmith-bench-") as tmp:
        tmp = Path(tmp)
        body_file = tmp / "body.json"
        body_file.write_bytes(body)

        if args.bare_rps:
            bare_result = {"saturation": {"rps": args.bare_rps}}
        else:
            port = free_port()
            bare = start_bare(port, secret, args.web_processes, tmp / "bare.log")
            try:
                wait_healthy(f"http://127.0.0.1:{port}/", bare)
                bare_result = measure("bare HMAC endpoint", f"http://127.0.0.1:{port}", bare.pid, body, body_file,
                                      signature, args)
            finally:
                stop(bare)

        serve_dir = tmp / "serve"
        serve_dir.mkdir()
        port = free_port()
        serve = start_serve(serve_dir, port, secret, args.web_processes, args.setting)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/healthz", serve)
            if args.pause_workers:
                time.sleep(2)
                signal_workers(serve.pid, signal.SIGSTOP)
            serve_result = measure("draftsmith serve" + (" (workers paused)" if args.pause_workers else ""),
                                   f"http://127.0.0.1:{port}", serve.pid, body, body_file, signature, args)
        finally:
            signal_workers(serve.pid, signal.SIGCONT)
            stop(serve)
        recorded = count_deliveries(serve_dir)

    sat, base = serve_result["saturation"], bare_result["saturation"]
    ratio = sat["rps"] / base["rps"]
    print("\n== summary")
    print(f"ingress / bare at saturation: {ratio:.0%} ({sat['rps']:.0f} / {base['rps']:.0f} req/s)   target >= 50%")
    print(f"ingress p99 at saturation: {sat['p99_ms']:.1f} ms   target < 25 ms")
    print(f"ingress p99 at {args.rate} req/s: {serve_result['steady']['p99_ms']:.1f} ms, "
          f"{serve_result['after']['p99_ms']:.1f} ms right after saturation   target < 5 ms")
    print(f"ingress web RSS: {serve_result['rss_mb']:.0f} MB   target < 150 MB")
    print(f"deliveries recorded by serve: {recorded}; answered 2xx (wrk counts only completed ones): "
          f"{serve_result['accepted']}")


if __name__ == "__main__":
    main()
