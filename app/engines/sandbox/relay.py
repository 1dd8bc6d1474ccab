"""Inside a sandbox: relay loopback TCP ports to the egress proxy's unix socket, then become the command.

    python -I -S relay.py SOCKET PROXY_PORT [LISTEN_PORT:HOST:PORT ...] -- COMMAND [ARG ...]

Standard library only: it runs with the worker's own interpreter (or a container image's python3) and
imports nothing of the app. It binds every listener, forks a detached relay process, and then execs
COMMAND in its own process, so the command keeps the PID the sandbox waits for and its exit code and
signals reach the sandbox unchanged. The relay never touches the command's stdout or stderr.

- 127.0.0.1:PROXY_PORT pipes each connection raw to SOCKET, where the proxy speaks HTTP proxy protocol.
- Each LISTEN_PORT (on 127.0.0.1 and ::1) opens a CONNECT tunnel to HOST:PORT through SOCKET, for
  clients that ignore proxy variables; a refused tunnel closes the connection (the proxy logs why).
"""

from __future__ import annotations

import _signal
import _socket
import os
import sys

_USAGE = "usage: relay.py SOCKET PROXY_PORT [LISTEN_PORT:HOST:PORT ...] -- COMMAND [ARG ...]"
# Exit codes for failing before COMMAND starts, as a shell reports them.
_CANNOT_START, _NOT_FOUND = 126, 127


def build_args(socket_path: str, proxy_port: int, forwards) -> list[str]:
    """The arguments before `--` for `forwards` given as (listen_port, target_host, target_port)."""
    return [socket_path, str(proxy_port), *(f"{port}:{host}:{target}" for port, host, target in forwards)]


def parse_args(args: list[str]) -> tuple[str, int, list[tuple[int, str, int]], list[str]]:
    split = args.index("--")
    socket_path, proxy_port, *specs = args[:split]
    forwards = []
    for spec in specs:
        listen, _, rest = spec.partition(":")
        host, _, target = rest.rpartition(":")  # host may be an IPv6 literal, itself full of colons
        forwards.append((int(listen), host, int(target)))
    command = args[split + 1:]
    if not command:
        raise ValueError("no command")
    return socket_path, int(proxy_port), forwards, command


# Until the command is started, only the C modules _socket and _signal: `socket` and `signal` import
# enum and selectors, ~10 ms of start-up that every sandboxed command would wait for.
def _listen(family: int, host: str, port: int) -> _socket.socket:
    sock = _socket.socket(family, _socket.SOCK_STREAM)
    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def bind_listeners(proxy_port: int, forwards) -> list[tuple[_socket.socket, tuple[str, int] | None]]:
    """Every listening socket, with its tunnel target (None: the raw proxy port)."""
    listeners = [(_listen(_socket.AF_INET, "127.0.0.1", proxy_port), None)]
    for port, host, target in forwards:
        listeners.append((_listen(_socket.AF_INET, "127.0.0.1", port), (host, target)))
        try:
            # `localhost` may resolve to ::1 first; without IPv6 on loopback, 127.0.0.1 has to do.
            listeners.append((_listen(_socket.AF_INET6, "::1", port), (host, target)))
        except OSError:
            pass
    return listeners


# -- the relay process ------------------------------------------------------------------------------
def _relay(socket_path: str, listeners, command_pid: int) -> None:
    """The forked relay: leave the command's session and output, then relay until the command is gone."""
    os.setsid()  # a command that signals its own process group must not take the relay with it
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    import asyncio  # here, not at the top: it costs ~70 ms, which the command need not wait for
    import socket

    async def pipe(reader, writer) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    async def handle(target, client_r, client_w) -> None:
        up_w = None
        try:
            up_r, up_w = await asyncio.open_unix_connection(socket_path)
            if target is not None:
                host, port = target
                authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                up_w.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
                head = await up_r.readuntil(b"\r\n\r\n")
                if head.split(b" ", 2)[1:2] != [b"200"]:
                    return
            await asyncio.gather(pipe(client_r, up_w), pipe(up_r, client_w))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            client_w.close()
            if up_w is not None:
                up_w.close()

    async def serve() -> None:
        for raw, target in listeners:
            sock = socket.socket(fileno=raw.detach())
            sock.setblocking(False)
            await asyncio.start_server(lambda r, w, t=target: handle(t, r, w), sock=sock)
        # In a sandbox the PID namespace ends us with the command; this covers running without one.
        while _alive(command_pid):
            await asyncio.sleep(1)

    asyncio.run(serve())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main(args: list[str]) -> None:
    try:
        socket_path, proxy_port, forwards, command = parse_args(args)
    except ValueError:
        print(_USAGE, file=sys.stderr)
        sys.exit(2)
    try:
        listeners = bind_listeners(proxy_port, forwards)
    except OSError as error:
        print(f"draftsmith relay: cannot listen: {error}", file=sys.stderr)
        sys.exit(_CANNOT_START)
    command_pid = os.getpid()
    child = os.fork()
    if child == 0:
        try:
            # Fork again so the relay is reparented to the sandbox's init, not left a child of the command.
            if os.fork() == 0:
                _relay(socket_path, listeners, command_pid)
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    for sock, _ in listeners:
        sock.close()
    # Python ignores these at start-up and exec keeps ignored signals; the command must get the defaults
    # (as subprocess's restore_signals does), e.g. so `yes | head -1` ends by SIGPIPE.
    for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ"):
        if hasattr(_signal, name):
            _signal.signal(getattr(_signal, name), _signal.SIG_DFL)
    try:
        os.execvp(command[0], command)
    except OSError as error:
        print(f"draftsmith relay: cannot run {command[0]}: {error.strerror}", file=sys.stderr)
        sys.exit(_NOT_FOUND if isinstance(error, FileNotFoundError) else _CANNOT_START)


if __name__ == "__main__":
    main(sys.argv[1:])
