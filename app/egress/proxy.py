"""The per-run egress proxy: a unix-socket HTTP proxy, outside the sandbox, that enforces an EgressPolicy.

It understands CONNECT (tunnels, for TLS and the sandbox relay's forward listeners) and absolute-form
plain HTTP. Every name is resolved once, each address checked, and the connection made to the checked
address, so a name cannot be re-resolved to somewhere else (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import socket
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from app.egress.policy import (
    NOT_ALLOWED,
    EgressPolicy,
    allow_hint,
    authority,
    ip_literal,
    normalise_host,
    split_host_port,
)
from app.logs import get_logger

HEAD_LIMIT = 64 * 1024
CHUNK = 64 * 1024
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NOT_FORWARDED = frozenset({"connection", "keep-alive", "host"})  # and proxy-*, and what Connection names
_REASONS = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 431: "Request Header Fields Too Large",
            502: "Bad Gateway", 503: "Service Unavailable"}
_ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Resolve = Callable[[str, int], "list[str] | Awaitable[list[str]]"]
Connect = Callable[[str, int], Awaitable[Streams]]


@dataclass(frozen=True)
class EgressEvent:
    """One connection the proxy allowed or refused; `address` is the IP used or refused, when there was one."""

    host: str
    port: int
    allowed: bool
    reason: str
    address: str | None = None


@dataclass(frozen=True)
class BlockedHost:
    """A (host, port) refused `count` times during the run, with the reason it was first refused."""

    host: str
    port: int
    count: int
    reason: str


# -- the sans-I/O part: request heads in, request heads out ----------------------------------------------


class BadRequest(ValueError):
    """A request the proxy cannot act on; the message goes back to the client in a 400."""


@dataclass(frozen=True)
class ProxyRequest:
    """A parsed request head. `target` is the origin-form path for plain HTTP, empty for CONNECT."""

    method: str
    host: str  # normalised
    port: int
    authority: str  # as the client wrote it, for the Host header
    target: str
    version: str
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def is_tunnel(self) -> bool:
        return self.method == "CONNECT"


def parse_request_head(head: bytes) -> ProxyRequest:
    """Parse a request head ending in CRLF CRLF: `CONNECT host:port` or `METHOD http://host[:port]/path`."""
    lines = head.decode("latin-1").split("\r\n")
    if lines[-2:] != ["", ""]:
        raise BadRequest("the request head must end with an empty line")
    lines = lines[:-2]
    # A lone CR or LF would let the upstream split lines where we did not (request smuggling).
    if any("\r" in line or "\n" in line or "\0" in line for line in lines):
        raise BadRequest("stray CR, LF or NUL in the request head")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest("malformed request line")
    method, target, version = parts
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise BadRequest(f"malformed header line {line[:80]!r}")
        headers.append((name, value.strip(" \t")))

    if method == "CONNECT":
        authority, path = target, ""
    elif target[:8].lower() == "https://":
        raise BadRequest("send https:// requests through CONNECT host:443")
    elif target[:7].lower() == "http://":
        rest = target[7:]
        cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
        authority, path = rest[:cut], rest[cut:].partition("#")[0]
        path = path if path.startswith("/") else "/" + path
    else:
        raise BadRequest("this is a proxy: send CONNECT host:port or an absolute http:// URL")
    if "@" in authority:
        raise BadRequest("credentials in the URL are not forwarded; remove the part before '@'")
    try:
        host, port = split_host_port(authority)
        host = normalise_host(host)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if port is None:
        if method == "CONNECT":
            raise BadRequest("CONNECT needs host:port")
        port = 80
    return ProxyRequest(method, host, port, authority, path, version, tuple(headers))


def origin_head(request: ProxyRequest) -> bytes:
    """The head to send upstream: origin-form, Host from the URL, no Proxy-* or hop-by-hop headers,
    and `Connection: close`, so the upstream ends the exchange and nothing is reused across requests."""
    named = {
        token.strip().lower()
        for name, value in request.headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    lines = [f"{request.method} {request.target} {request.version}", f"Host: {request.authority}"]
    for name, value in request.headers:
        lowered = name.lower()
        if lowered in _NOT_FORWARDED or lowered in named or lowered.startswith("proxy-"):
            continue
        lines.append(f"{name}: {value}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def response(status: int, text: str, *, blocked: bool = False) -> bytes:
    """A complete short text/plain response that closes the connection."""
    body = (text.rstrip("\n") + "\n").encode()
    head = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if blocked:
        head.append("X-Draftsmith-Egress: blocked")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def refusal_text(host: str, port: int, reason: str) -> str:
    """What an agent reads when refused: the reason and, when listing the host would help, the line to add."""
    text = f"Draftsmith blocked egress to {authority(host, port)}: {reason}\n"
    if reason == NOT_ALLOWED:
        text += f"To allow it, add to .github/draftsmith.yml on the default branch: {allow_hint(host, port)}\n"
    return text


# -- the proxy ---------------------------------------------------------------------------------------


async def _resolve_with_getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


async def _open_tcp(ip: str, port: int) -> Streams:
    reader, writer = await asyncio.open_connection(ip, port, limit=CHUNK)
    # asyncio sets TCP_NODELAY on 3.11 already; small model requests must never wait on Nagle, so be sure.
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__  # TimeoutError has no message


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()
    # Pass the half-close on: the other direction may still have bytes to carry.
    if writer.can_write_eof() and not writer.is_closing():
        writer.write_eof()


class EgressProxy:
    """The egress proxy for one run, on its own event loop in a daemon thread.

    `resolve(host, port)` returns the addresses for a name (a list, or an awaitable of one; default
    getaddrinfo). `connect(ip, port)` opens (reader, writer) to a checked address (default TCP with
    TCP_NODELAY). `on_event(EgressEvent)` is called from the proxy's thread for every allowed and refused
    connection and must be quick. `connect_timeout` bounds resolving and each connection attempt;
    `header_timeout` bounds reading a request head. Past `max_connections` open at once, a new connection
    gets a 503 and is closed before its request is read: the proxy shares the worker's file descriptors
    with other runs, so one agent must not exhaust them.
    """

    def __init__(
        self,
        socket_path: Path,
        policy: EgressPolicy,
        *,
        resolve: Resolve | None = None,
        connect: Connect | None = None,
        on_event: Callable[[EgressEvent], None] | None = None,
        connect_timeout: float = 10.0,
        header_timeout: float = 30.0,
        max_connections: int = 512,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.policy = policy
        self._resolve = resolve or _resolve_with_getaddrinfo
        self._connect = connect or _open_tcp
        self._on_event = on_event
        self._connect_timeout = connect_timeout
        self._header_timeout = header_timeout
        self._max_connections = max_connections
        self._blocked: dict[tuple[str, int], BlockedHost] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._startup_error: BaseException | None = None
        self._tasks: set[asyncio.Task] = set()

    # -- lifecycle --

    def start(self) -> None:
        """Listen on `socket_path` (mode 0666); returns once connections are accepted."""
        if self._thread is not None:
            raise RuntimeError("this EgressProxy was already started")
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="egress-proxy", daemon=True)
        self._thread.start()
        ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            raise self._startup_error

    def stop(self) -> None:
        """Stop listening and close every open tunnel; returns once they are closed."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None or not thread.is_alive() or loop is None or stopping is None:
            return
        loop.call_soon_threadsafe(stopping.set)
        thread.join()
        self.socket_path.unlink(missing_ok=True)

    def __enter__(self) -> EgressProxy:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def blocked(self) -> list[BlockedHost]:
        """Every refused (host, port) so far, in the order first refused."""
        with self._lock:
            return list(self._blocked.values())

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        # Our own resolver threads, so stop() never waits on a slow DNS lookup in a shared pool.
        executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="egress-dns")
        loop.set_default_executor(executor)
        try:
            loop.run_until_complete(self._serve(ready))
        except BaseException as exc:  # noqa: BLE001 - handed to start(), which raises it in the caller's thread
            if not ready.is_set():
                self._startup_error = exc
            else:
                get_logger().exception("egress proxy crashed", socket=str(self.socket_path))
        finally:
            ready.set()
            executor.shutdown(wait=False, cancel_futures=True)
            loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_unix_server(self._handle, path=str(self.socket_path), limit=HEAD_LIMIT)
        # The sandbox connects as a throwaway uid; the per-run directory, not the mode, keeps others out.
        os.chmod(self.socket_path, 0o666)
        ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

    # -- one client connection --

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping.is_set():  # accepted just as stop() began
            writer.transport.abort()
            return
        if len(self._tasks) >= self._max_connections:
            writer.write(response(503, f"more than {self._max_connections} connections open at once"))
            writer.close()
            return
        task = asyncio.current_task()
        self._tasks.add(task)
        writers = [writer]
        try:
            try:
                async with asyncio.timeout(self._header_timeout):
                    head = await reader.readuntil(b"\r\n\r\n")
            except TimeoutError:
                writer.write(response(408, "no complete request head in time"))
                return
            except asyncio.LimitOverrunError:
                writer.write(response(431, f"the request head is larger than {HEAD_LIMIT} bytes"))
                return
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            try:
                request = parse_request_head(head)
            except BadRequest as exc:
                writer.write(response(400, str(exc)))
                return
            upstream = await self._open_upstream(request, writer)
            if upstream is None:
                return
            up_reader, up_writer = upstream
            writers.append(up_writer)
            if request.is_tunnel:
                writer.write(_ESTABLISHED)
                await self._splice(reader, writer, up_reader, up_writer, until_upstream_ends=False)
            else:
                up_writer.write(origin_head(request))
                await self._splice(reader, writer, up_reader, up_writer, until_upstream_ends=True)
        except asyncio.CancelledError:
            for w in writers:
                w.transport.abort()  # stop(): don't wait to flush to a peer that may not be reading
            raise
        except ConnectionError:
            pass
        finally:
            for w in writers:
                w.close()
            self._tasks.discard(task)

    async def _open_upstream(self, request: ProxyRequest, client: asyncio.StreamWriter) -> Streams | None:
        """Check, resolve, check each address and connect; on failure answer the client and return None."""
        host, port = request.host, request.port
        decision = self.policy.check_host(host, port)
        if not decision.allowed:
            self._refuse(client, host, port, decision.reason, None)
            return None
        literal = ip_literal(host)
        try:
            addresses = [str(literal)] if literal is not None else await self._lookup(host, port)
        except (OSError, TimeoutError) as exc:
            return self._unreachable(client, request, f"could not resolve {host}: {_describe(exc)}")
        usable, refused = [], None
        for address in addresses:
            checked = self.policy.check_address(host, port, address)
            if checked.allowed:
                usable.append((str(ip_literal(address)), checked))
            elif refused is None:
                refused = (address, checked)
        if not usable:
            if refused is None:
                return self._unreachable(client, request, f"{host} has no addresses")
            self._refuse(client, host, port, refused[1].reason, refused[0])
            return None
        for address, checked in usable:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    streams = await self._connect(address, port)
            except (OSError, TimeoutError) as exc:
                error = exc
                continue
            self._emit(EgressEvent(host, port, True, checked.reason, address))
            return streams
        return self._unreachable(client, request, f"could not connect: {_describe(error)}", address, checked.reason)

    async def _lookup(self, host: str, port: int) -> list[str]:
        async with asyncio.timeout(self._connect_timeout):
            addresses = self._resolve(host, port)
            if inspect.isawaitable(addresses):
                addresses = await addresses
        return list(addresses)

    @staticmethod
    async def _splice(reader, writer, up_reader, up_writer, *, until_upstream_ends: bool) -> None:
        up = asyncio.create_task(_pipe(reader, up_writer))
        down = asyncio.create_task(_pipe(up_reader, writer))
        pending = {up, down}
        try:
            # A tunnel stays up while either direction still carries bytes (half-close); an error ends both.
            # Plain HTTP ends with the upstream's answer: it was told `Connection: close`, so nothing more
            # can come back, even if the client keeps its end open for reuse.
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(t.exception() for t in done) or (until_upstream_ends and down in done):
                    break
        finally:
            for pipe in (up, down):
                pipe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(up, down, return_exceptions=True)

    # -- outcomes --

    def _refuse(self, client: asyncio.StreamWriter, host: str, port: int, reason: str, address: str | None) -> None:
        # Counted before answering: a caller that reads the 403 and then asks blocked() must see it.
        with self._lock:
            seen = self._blocked.get((host, port))
            self._blocked[(host, port)] = BlockedHost(host, port, seen.count + 1 if seen else 1,
                                                      seen.reason if seen else reason)
        self._emit(EgressEvent(host, port, False, reason, address))
        client.write(response(403, refusal_text(host, port, reason), blocked=True))

    def _unreachable(self, client: asyncio.StreamWriter, request: ProxyRequest, why: str,
                     address: str | None = None, reason: str = "allowed") -> None:
        self._emit(EgressEvent(request.host, request.port, True, f"{reason}; unreachable: {why}", address))
        client.write(response(502, f"Draftsmith could not reach {request.authority}: {why}"))

    def _emit(self, event: EgressEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:  # noqa: BLE001 - a reporting bug must not break the agent's connections
            get_logger().exception("egress on_event failed", host=event.host, port=event.port)
