"""Run the real app for end-to-end tests: create_app under uvicorn on a free port plus an in-process dramatiq worker.

Fixtures:
- `make_draftsmith(github_env=None, database_url=None, redis_url=None, worker=True, **settings)` builds and
  starts a DraftsmithServer (stopped at teardown);
- `draftsmith`: one pointed at the `fakehub` fixture (its `.env()`), with fakehub's webhook_url set to it.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from app.db import make_engine
from app.migrate import upgrade
from app.models import Delivery
from app.queue.broker import queue_depths
from app.queue.startup import build_runtime
from app.queue.worker import start_worker
from app.settings import Settings
from app.web.app import create_app
from tests.support.webhooks import encode, signed_headers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline_github_env(directory: Path, api_url: str = "http://127.0.0.1:9/") -> dict[str, str]:
    """GitHub App settings with a fresh RSA key, for tests that never call GitHub (no fakehub needed)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = Path(directory) / "app-key.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return {
        "GITHUB_APP_ID": "1",
        "GITHUB_PRIVATE_KEY_PATH": str(path),
        "GITHUB_WEBHOOK_SECRET": secrets.token_hex(16),
        "GITHUB_API_URL": api_url,
    }


class DraftsmithServer:
    """The web app on uvicorn in a thread, and optionally a dramatiq worker, sharing one Runtime."""

    def __init__(self, settings: Settings, *, worker: bool = True, worker_threads: int = 2) -> None:
        self.settings = settings
        self.worker_threads = worker_threads
        self.runtime = build_runtime(settings)
        self.engine = self.runtime.engine
        # The port is chosen with the settings (see build_settings) so the public URL, used in check run
        # links and Actions callbacks, points here.
        self.port = settings.port
        self.url = f"http://127.0.0.1:{self.port}"
        self.webhook_url = f"{self.url}/api/github/webhooks"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._worker = None
        self._start_web()
        if worker:
            self.start_worker()
        self.client = httpx.Client(base_url=self.url, timeout=30)

    # -- web -----------------------------------------------------------------------------------
    def _start_web(self) -> None:
        app = create_app(self.settings, runtime=self.runtime)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)

    def post_webhook(
        self,
        event: str,
        payload: dict[str, Any] | bytes | str,
        delivery_id: str | None = None,
        *,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST a delivery signed with the app's webhook secret (or `secret`), as GitHub would."""
        body = encode(payload)
        key = secret if secret is not None else self.settings.signing_secret
        all_headers = signed_headers(body, event, key, delivery_id)
        all_headers.update(headers or {})
        return self.client.post("/api/github/webhooks", content=body, headers=all_headers)

    # -- worker --------------------------------------------------------------------------------
    def start_worker(self, queues: set[str] | None = None) -> None:
        if self._worker is None:
            self._worker = start_worker(self.runtime, threads=self.worker_threads,
                                        poll_ms=50, queues=queues)

    def hold_runs(self) -> None:
        """Keep processing deliveries but leave task runs queued (their own queue) until release_runs()."""
        from app.queue.actors import DELIVERIES_QUEUE

        self.stop_worker()
        self.start_worker(queues={DELIVERIES_QUEUE})

    def release_runs(self) -> None:
        self.stop_worker()
        self.start_worker()

    def join_deliveries(self, timeout: float = 20.0) -> None:
        """Wait until every recorded delivery is processed (runs may still be queued)."""
        from app.queue.actors import DELIVERIES_QUEUE

        deadline = time.monotonic() + timeout
        while True:
            queued = queue_depths(self.runtime.broker).get(DELIVERIES_QUEUE, 0)
            _, waiting = self.pending()
            if queued == 0 and waiting == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{waiting} deliveries not processed")
            time.sleep(0.02)

    def stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.stop(timeout=10_000)
            self._worker = None

    def restart_worker(self) -> None:
        self.stop_worker()
        self.start_worker()

    # -- waiting -------------------------------------------------------------------------------
    def pending(self) -> tuple[int, int]:
        """(messages still queued or running, deliveries not yet processed)."""
        queued = sum(queue_depths(self.runtime.broker).values())
        with self.engine.connect() as conn:
            waiting = conn.execute(
                select(func.count()).select_from(Delivery).where(Delivery.status == "received")
            ).scalar_one()
        return queued, waiting

    def join(self, timeout: float = 20.0) -> None:
        """Wait until every queue is drained and every recorded delivery is processed."""
        deadline = time.monotonic() + timeout
        while True:
            queued, waiting = self.pending()
            if queued == 0 and waiting == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"still {queued} queued message(s) and {waiting} unprocessed deliveries")
            time.sleep(0.02)

    def delivery(self, delivery_id: str) -> Delivery | None:
        from sqlmodel import Session

        with Session(self.engine) as session:
            return session.get(Delivery, delivery_id)

    def stop(self) -> None:
        self.client.close()
        self.stop_worker()
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(15)
            self._server = None
        self.runtime.close()


def build_settings(
    tmp_path: Path,
    *,
    github_env: dict[str, str],
    redis_url: str,
    database_url: str | None = None,
    **overrides: Any,
) -> Settings:
    if database_url is None:
        database_url = f"sqlite:///{tmp_path / 'draftsmith.db'}"
    engine = make_engine(Settings(DATABASE_URL=database_url).effective_database_url)
    upgrade(engine)
    engine.dispose()
    port = int(overrides.pop("DRAFTSMITH_PORT", 0)) or free_port()
    overrides.setdefault("DRAFTSMITH_PUBLIC_URL", f"http://127.0.0.1:{port}")
    return Settings(
        **github_env,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        DRAFTSMITH_DATA_DIR=str(tmp_path / "data"),
        DRAFTSMITH_PORT=port,
        **overrides,
    )


@pytest.fixture
def make_draftsmith(tmp_path, request):
    started: list[DraftsmithServer] = []

    def make(
        github_env: dict[str, str] | None = None,
        *,
        database_url: str | None = None,
        redis_url: str | None = None,
        worker: bool = True,
        worker_threads: int = 2,
        **overrides: Any,
    ) -> DraftsmithServer:
        settings = build_settings(
            tmp_path,
            github_env=github_env if github_env is not None else offline_github_env(tmp_path),
            redis_url=redis_url or request.getfixturevalue("redis_url"),
            database_url=database_url,
            **overrides,
        )
        server = DraftsmithServer(settings, worker=worker, worker_threads=worker_threads)
        started.append(server)
        return server

    yield make
    for server in reversed(started):
        server.stop()


@pytest.fixture
def draftsmith(make_draftsmith, request):
    """The app wired to the fake GitHub: GitHub's deliveries from `fakehub` reach it, signed."""
    fakehub = request.getfixturevalue("fakehub")
    server = make_draftsmith(fakehub.env())
    fakehub.webhook_url = server.webhook_url
    return server


__all__ = ["DraftsmithServer", "build_settings", "free_port", "offline_github_env"]
