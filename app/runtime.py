"""Runtime: what one process shares (settings, database, broker, GitHub App), handed to it where it starts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any

from app.metrics import Metrics
from app.settings import Settings

if TYPE_CHECKING:
    import dramatiq
    from sqlalchemy.engine import Engine

    from app.egress.proxy import Resolve
    from app.engines.actions.callbacks import RunCallbacks
    from app.github.client import AppIdentity, GitHubApp
    from app.deliveries.outcomes import OutcomeWriter

# "Not given": build the GitHub App from the settings on first use. Distinct from None (no App).
_UNSET: Any = object()


class Runtime:
    """The process's settings, database engine, broker and GitHub App, passed down to whatever needs them.

    The entry point that starts the process builds the broker, with our actors declared on it
    (app.queue.startup.build_runtime; tests' fixtures pass a StubBroker), and this Runtime closes it.
    A web process passes how to build it instead (app.web.app), and the engine and GitHub App are
    built on first use: a web process that only records deliveries never touches them, and the
    SQLAlchemy/SQLModel engine, redis-py with dramatiq's RedisBroker and githubkit together cost a web
    process ~50 MB of imports, more than everything it does need (issue 2 caps two web processes at 150 MB).
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine | None = None,
        broker: dramatiq.Broker | Callable[[], dramatiq.Broker] | None = None,
        github: GitHubApp | None = _UNSET,
        metrics: Metrics | None = None,
        *,
        redis_url: str | None = None,
    ) -> None:
        self.settings = settings
        # Workers find the agent CLIs `draftsmith agents install` put in this settings' agents dir.
        from app.agents.base import use_agents_dir

        use_agents_dir(settings.effective_agents_dir)
        self.metrics = metrics or Metrics()
        # Set by whoever wires them: the Actions callbacks (app.engines.actions.callbacks.wire) and tests.
        self.run_callbacks: RunCallbacks | None = None
        # How runs' egress proxies resolve names; None is getaddrinfo (tests map names to loopback).
        self.egress_resolver: Resolve | None = None
        # (repository, login) -> (monotonic time, permission), for app.handlers.context.Context.permission.
        self.permission_cache: dict[tuple[str, str], tuple[float, str]] = {}
        # The Redis this process's broker uses (serve passes the embedded one's URL); None with a stub broker.
        self.redis_url = redis_url
        self._engine = engine
        self._broker = broker
        self._github = github
        self._outcomes: OutcomeWriter | None = None
        self._owns_engine = engine is None
        # The web app's threads and a test's in-process worker may reach for the same part at once.
        self._lock = threading.Lock()
        self.metrics.watch(self._queue_depths, self._delivery_counts, self._oldest_kept,
                           recovery_totals=self._recovery_totals, relay_state=self._relay_state)

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
        if callable(self._broker):  # a web process's: built on first use by what its entry point gave
            with self._lock:
                if callable(self._broker):
                    self._broker = self._broker()
        if self._broker is None:
            raise RuntimeError("this process was started without a broker")
        return self._broker

    @property
    def outcomes(self) -> OutcomeWriter:
        """Where delivery outcomes are stored from (a thread, started on first use; app.deliveries.outcomes)."""
        if self._outcomes is None:
            engine = self.engine  # not under the lock: building the engine takes it too
            with self._lock:
                if self._outcomes is None:
                    from app.deliveries.outcomes import OutcomeWriter

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
        from app.deliveries.stores import sql
        from app.models import utcnow

        return sql.counts_since(self.engine, utcnow() - timedelta(hours=24))

    def _oldest_kept(self) -> dict[str, float | None]:
        from app import retention
        from app.models import utcnow

        now = utcnow()
        return {kind: (now - (at if at.tzinfo else at.replace(tzinfo=UTC))).total_seconds() if at else None
                for kind, at in retention.oldest(self.engine).items()}

    def _recovery_totals(self):
        from app.deliveries.recovery import totals

        return totals(self.engine)

    def _relay_state(self):
        from app.relay.state import read_state, state_path

        return read_state(state_path(self.settings.data_dir)) if self.settings.webhook_relay_url else None

    async def identity(self) -> AppIdentity | None:
        """The App's slug and bot login, read from `GET /app` on first use and kept."""
        if self.github is None:
            return None
        return await self.github.identity()

    def close(self) -> None:
        if self._outcomes is not None:
            self._outcomes.close()
        if self._broker is not None and not callable(self._broker):
            self._broker.close()
        if self._owns_engine and self._engine is not None:
            self._engine.dispose()
