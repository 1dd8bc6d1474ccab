"""Benchmark the egress proxy: small HTTP request latency to a loopback server, direct and through the proxy.

Run from the repository root:  uv run python bench/egress.py [--requests 2000]
The upstream server and the proxy each run in their own process, as they would beside a worker, and the
client is a plain blocking socket, so the numbers are the proxy's cost rather than the GIL's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
import subprocess
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BODY = b'{"id":"msg_bench","type":"message","content":[{"type":"text","text":"ok"}]}'


# -- the upstream: a minimal keep-alive HTTP/1.1 server, standing in for a model API -----------------------
def serve_upstream(ready) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                close = b"connection: close" in head.lower()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
                             % (len(BODY), b"Connection: close\r\n" if close else b"", BODY))
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        ready.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


def serve_proxy(socket_path: str, port: int, ready) -> None:
    sys.path.insert(0, str(ROOT))
    from app.egress.policy import EgressPolicy, Endpoint
    from app.egress.proxy import EgressProxy

    # The model endpoint, as an operator-set local base URL both by address and by name.
    policy = EgressPolicy(model_endpoints=(Endpoint("127.0.0.1", port, operator_set=True),
                                           Endpoint("localhost", port, operator_set=True)))
    with EgressProxy(Path(socket_path), policy):
        ready.send(True)
        ready.recv()  # until the bench is done


# -- the client ----------------------------------------------------------------------------------------------
def read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return head


def request(host: str, port: int) -> bytes:
    return (f"POST /v1/messages HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: 2\r\n\r\n{{}}").encode()


def tcp(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def unix(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


def tunnel(path: str, host: str, port: int) -> socket.socket:
    sock = unix(path)
    sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):  # nothing else can arrive before we send the request
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def time_each(n: int, one: Callable[[], None]) -> list[float]:
    for _ in range(min(200, n // 10)):  # warm up: imports, caches, the resolver's threads
        one()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        one()
        times.append(time.perf_counter() - start)
    return times


def fresh(connect: Callable[[], socket.socket], payload: bytes) -> Callable[[], None]:
    def one() -> None:
        with connect() as sock:
            sock.sendall(payload)
            read_response(sock)

    return one


def kept(sock: socket.socket, payload: bytes) -> Callable[[], None]:
    def one() -> None:
        sock.sendall(payload)
        read_response(sock)

    return one


def summary(times: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(times, n=10)
    return statistics.median(times) * 1000, cuts[8] * 1000


@contextlib.contextmanager
def relay(socket_path: str, upstream_port: int):
    """The sandbox's relay (app/engines/sandbox/relay.py) with one forward to the upstream; yields its port."""
    proxy_port, forward = free_port(), free_port()
    script = ROOT / "app" / "runners" / "sandbox" / "relay.py"
    argv = [sys.executable, "-I", "-S", str(script), socket_path, str(proxy_port),
            f"{forward}:127.0.0.1:{upstream_port}", "--", "sleep", "600"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while True:  # the listeners are bound before `sleep` starts; wait for them
            try:
                socket.create_connection(("127.0.0.1", forward), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        yield forward
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    args = parser.parse_args()
    n = args.requests

    context = multiprocessing.get_context("spawn")
    up_parent, up_child = context.Pipe()
    upstream = context.Process(target=serve_upstream, args=(up_child,), daemon=True)
    upstream.start()
    port = up_parent.recv()
    with tempfile.TemporaryDirectory(prefix="egress-bench-") as tmp:
        path = os.path.join(tmp, "egress.sock")
        proxy_parent, proxy_child = context.Pipe()
        proxy = context.Process(target=serve_proxy, args=(path, port, proxy_child), daemon=True)
        proxy.start()
        proxy_parent.recv()
        print(f"{n} sequential requests per row ({len(request('127.0.0.1', port))}-byte POST, {len(BODY)}-byte "
              f"answer); {os.cpu_count()} CPUs shared by client, proxy and upstream")

        by_address = request("127.0.0.1", port)
        absolute = by_address.replace(b"POST /v1", f"POST http://127.0.0.1:{port}/v1".encode(), 1)
        rows: list[tuple[str, list[float], str | None]] = []
        rows.append(("direct, new connection per request", time_each(n, fresh(lambda: tcp(port), by_address)), None))
        with tcp(port) as sock:
            rows.append(("direct, one kept connection", time_each(n, kept(sock, by_address)), None))
        rows.append(("proxy, new CONNECT tunnel per request (IP)",
                     time_each(n, fresh(lambda: tunnel(path, "127.0.0.1", port), by_address)),
                     "direct, new connection per request"))
        rows.append(("proxy, new CONNECT tunnel per request (name)",
                     time_each(n, fresh(lambda: tunnel(path, "localhost", port), request("localhost", port))),
                     "direct, new connection per request"))
        rows.append(("proxy, absolute-form GET per request",
                     time_each(n, fresh(lambda: unix(path), absolute)), "direct, new connection per request"))
        with tunnel(path, "127.0.0.1", port) as sock:
            rows.append(("proxy, many requests in one kept tunnel", time_each(n, kept(sock, by_address)),
                         "direct, one kept connection"))
        # The whole path a sandboxed CLI takes to a loopback model URL: the in-sandbox relay's forward
        # (TCP), the unix socket, the proxy, the upstream. Outside a sandbox here; loopback costs the same.
        with relay(path, port) as forward:
            rows.append(("relay forward + proxy, new connection per request",
                         time_each(n, fresh(lambda: tcp(forward), by_address)), "direct, new connection per request"))
            with tcp(forward) as sock:
                rows.append(("relay forward + proxy, one kept connection", time_each(n, kept(sock, by_address)),
                             "direct, one kept connection"))
        proxy_parent.send(True)
        proxy.join(10)
    upstream.terminate()

    medians = {name: summary(times)[0] for name, times, _ in rows}
    print(f"\n{'':52} {'p50 ms':>8} {'p90 ms':>8} {'added p50':>10}")
    for name, times, baseline in rows:
        p50, p90 = summary(times)
        added = f"{p50 - medians[baseline]:+.3f}" if baseline else ""
        print(f"{name:52} {p50:8.3f} {p90:8.3f} {added:>10}")
    print("\ntarget: the proxy adds < 2 ms p50 to a model request on loopback")


if __name__ == "__main__":
    main()
