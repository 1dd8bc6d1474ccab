"""Runtime: what one process builds once from Settings (database, broker, GitHub App) and passes down."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from app.metrics import Metrics
from app.settings import Settings

if TYPE_CHECKING:
    import dramatiq
    from sqlalchemy.engine import Engine

    from app.egress.proxy import Resolve
    from app.engines.actions.callbacks import RunCallbacks
    from app.github.client import AppIdentity, GitHubApp
    from app.queue.outcomes import OutcomeWriter

# "Not given": build it from the settings on first use. Distinct from None (github=None means no App).
_UNSET: Any = object()


class Runtime:
    """The process's engine, broker and GitHub App, each built on first use.

    Lazily, because a web process that only records deliveries never touches most of them: the
    SQLAlchemy/SQLModel engine, dramatiq's RedisBroker and githubkit together cost a web process
    ~50 MB of imports, more than everything it does need (issue 2 caps two web processes at 150 MB).
    Workers touch all three at start-up, so for them nothing changes.
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine | None = None,
        broker: dramatiq.Broker | None = None,
        github: GitHubApp | None = _UNSET,
        metrics: Metrics | None = None,
        *,
        redis_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        # Set by whoever wires them: the Actions engine (app.engines.actions.engine.wire) and tests.
        self.run_callbacks: RunCallbacks | None = None
        # How runs' egress proxies resolve names; None is getaddrinfo (tests map names to loopback).
        self.egress_resolver: Resolve | None = None
        # (repository, login) -> (monotonic time, permission), for app.handlers.context.Context.permission.
        self.permission_cache: dict[tuple[str, str], tuple[float, str]] = {}
        # The Redis the broker uses (serve passes the embedded one's URL); None with a given broker.
        self.redis_url = redis_url if broker is None else None
        self._engine = engine
        self._broker = broker
        self._github = github
        self._outcomes: OutcomeWriter | None = None
        self._owns_engine = engine is None
        self._owns_broker = broker is None
        # The web app's threads and a test's in-process worker may reach for the same part at once.
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        broker: dramatiq.Broker | None = None,
        redis_url: str | None = None,
        engine: Engine | None = None,
        github: GitHubApp | None = _UNSET,
    ) -> Runtime:
        """The process's runtime. `redis_url` overrides settings (the embedded Redis's URL).

        Nothing connects here; the engine, broker and GitHub App are built when first used.
        """
        url = None
        if broker is None:
            url = redis_url or settings.redis_url
            if not url:
                raise ValueError("no Redis URL: start the embedded Redis first and pass its URL")
        runtime = cls(settings, engine=engine, broker=broker, github=github, redis_url=url)
        runtime.metrics.watch(runtime._queue_depths, runtime._delivery_counts)
        return runtime

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    from app.db import make_engine

                    self._engine = make_engine(self.settings.effective_database_url)
        return self._engine

    @property
    def broker(self) -> dramatiq.Broker:
        if self._broker is None:
            with self._lock:
                if self._broker is None:
                    from app.queue.actors import declare_actors
                    from app.queue.broker import make_broker

                    broker = make_broker(self.redis_url, heartbeat_timeout_ms=self.settings.heartbeat_timeout_seconds * 1000)
                    declare_actors(broker)
                    self._broker = broker
        return self._broker

    @property
    def outcomes(self) -> OutcomeWriter:
        """Where delivery outcomes are stored from (a thread, started on first use; app.queue.outcomes)."""
        if self._outcomes is None:
            engine = self.engine  # not under the lock: building the engine takes it too
            with self._lock:
                if self._outcomes is None:
                    from app.queue.outcomes import OutcomeWriter

                    self._outcomes = OutcomeWriter(engine).start()
        return self._outcomes

    @property
    def github(self) -> GitHubApp | None:
        """None until the GitHub App settings are configured; the web app still starts and says what's missing."""
        if self._github is _UNSET:
            with self._lock:
                if self._github is _UNSET:
                    github = None
                    if not self.settings.missing_github_settings():
                        from app.github.client import GitHubApp

                        github = GitHubApp(self.settings)
                    self._github = github
        return self._github

    @github.setter
    def github(self, value: GitHubApp | None) -> None:
        self._github = value

    def _queue_depths(self) -> dict[str, int]:
        from app.queue.broker import queue_depths

        return queue_depths(self.broker)

    def _delivery_counts(self):
        from app import deliveries
        from app.models import utcnow

        return deliveries.counts_since(self.engine, utcnow() - timedelta(hours=24))

    async def identity(self) -> AppIdentity | None:
        """The App's slug and bot login, read from `GET /app` on first use and kept."""
        if self.github is None:
            return None
        return await self.github.identity()

    def close(self) -> None:
        if self._outcomes is not None:
            self._outcomes.close()
        if self._owns_broker and self._broker is not None:
            self._broker.close()
        if self._owns_engine and self._engine is not None:
            self._engine.dispose()
