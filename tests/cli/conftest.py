"""Run the real `draftsmith` command in a subprocess, in a temporary directory, as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from sqlmodel import Session

from app.db import make_engine
from app.models import Delivery
from tests.support.app_server import free_port

DRAFTSMITH = str(Path(sys.executable).parent / "draftsmith")


def clean_environment(**extra: str) -> dict[str, str]:
    """Our environment without any Draftsmith or GitHub settings a developer may have exported."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "DRAFTSMITH_")) and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(extra)
    return env


class ServeProcess:
    """`draftsmith serve` running in `directory`; console output collected in directory/serve.log."""

    def __init__(self, directory: Path, env: dict[str, str], command: str = "serve") -> None:
        self.directory = directory
        self.env = env
        self.command = command
        self.port = int(env["DRAFTSMITH_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / f"{command}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [DRAFTSMITH, command], cwd=directory, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.output}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"serve did not answer /healthz in {timeout}s:\n{self.output}")

    def wait_for_output(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"{text!r} not printed:\n{self.output}")
            time.sleep(0.05)
        return self.output

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def children_named(self, fragment: str) -> list[psutil.Process]:
        found = []
        for child in self.descendants():
            try:
                if fragment in " ".join(child.cmdline()):
                    found.append(child)
            except psutil.Error:  # exited (or a zombie not reaped yet) while we looked
                pass
        return found

    def delivery(self, delivery_id: str, database_url: str | None = None) -> Delivery | None:
        url = database_url or f"sqlite:///{self.directory / '.draftsmith' / 'draftsmith.db'}"
        engine = make_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with Session(engine) as session:
                return session.get(Delivery, delivery_id)
        finally:
            engine.dispose()

    def wait_for_delivery_status(self, delivery_id: str, database_url: str | None = None, timeout: float = 15.0) -> str:
        """Wait until a worker has moved the delivery out of `received`; return its status."""
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            delivery = self.delivery(delivery_id, database_url)
            status = delivery.status if delivery else None
            if status not in (None, "received"):
                return status
            time.sleep(0.1)
        raise AssertionError(f"delivery {delivery_id} still {status!r}:\n{self.output}")

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        self._log.close()
        return self.process.returncode


class _Starter:
    """start(env_file_text="", command="serve", **env) -> a healthy ServeProcess; again(stopped) restarts one;
    stop_all() at teardown."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[ServeProcess] = []

    def __call__(self, env_file_text: str = "", command: str = "serve", wait: bool = True, **env: str) -> ServeProcess:
        directory = self.root / f"{command}-{len(self.started)}"
        directory.mkdir()
        (directory / ".env").write_text(env_file_text)
        env.setdefault("DRAFTSMITH_PORT", str(free_port()))
        return self._start(ServeProcess(directory, clean_environment(**env), command), wait)

    def again(self, stopped: ServeProcess) -> ServeProcess:
        """The same command started again in the same directory, with the same settings (a restart)."""
        return self._start(ServeProcess(stopped.directory, stopped.env, stopped.command), wait=True)

    def _start(self, process: ServeProcess, wait: bool) -> ServeProcess:
        self.started.append(process)
        if wait:
            process.wait_healthy()
        return process

    def stop_all(self) -> None:
        for process in self.started:
            leftovers = process.descendants() if process.process.poll() is None else []
            process.stop()
            for child in leftovers:  # only reached if a test failed half way
                if child.is_running():
                    child.kill()


@pytest.fixture
def start_serve(tmp_path):
    starter = _Starter(tmp_path)
    yield starter
    starter.stop_all()


@pytest.fixture(scope="module")
def start_shared_serve(tmp_path_factory):
    """Like start_serve, for a module's tests that share one running app (each start costs seconds)."""
    starter = _Starter(tmp_path_factory.mktemp("serve"))
    yield starter
    starter.stop_all()
