"""Runtime: what one process builds once from Settings (database, broker, GitHub App) and passes down."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import dramatiq
from sqlalchemy.engine import Engine

from app import deliveries
from app.db import make_engine
from app.github.client import AppIdentity, GitHubApp
from app.metrics import Metrics
from app.models import utcnow
from app.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    broker: dramatiq.Broker
    # None until the GitHub App settings are configured; the web app still starts and says what's missing.
    github: GitHubApp | None
    metrics: Metrics = field(default_factory=Metrics)
    # Filled in by owners of later services (task service, reporter) so handlers reach them via Context.
    services: dict[str, Any] = field(default_factory=dict)
    _owns_broker: bool = False
    _owns_engine: bool = False

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        broker: dramatiq.Broker | None = None,
        redis_url: str | None = None,
        engine: Engine | None = None,
        github: GitHubApp | None = None,
    ) -> Runtime:
        """Build the process's runtime. `redis_url` overrides settings (the embedded Redis's URL)."""
        from app.queue.actors import declare_actors
        from app.queue.broker import make_broker, queue_depths

        owns = broker is None
        if broker is None:
            url = redis_url or settings.redis_url
            if not url:
                raise ValueError("no Redis URL: start the embedded Redis first and pass its URL")
            broker = make_broker(url, heartbeat_timeout_ms=settings.heartbeat_timeout_seconds * 1000)
        declare_actors(broker)
        if github is None and not settings.missing_github_settings():
            github = GitHubApp(settings)
        owns_engine = engine is None
        engine = engine or make_engine(settings.effective_database_url)
        runtime = cls(
            settings=settings, engine=engine, broker=broker, github=github,
            _owns_broker=owns, _owns_engine=owns_engine,
        )
        runtime.metrics.watch(
            lambda: queue_depths(broker),
            lambda: deliveries.counts_since(engine, utcnow() - timedelta(hours=24)),
        )
        return runtime

    async def identity(self) -> AppIdentity | None:
        """The App's slug and bot login, read from `GET /app` on first use and kept."""
        if self.github is None:
            return None
        return await self.github.identity()

    def close(self) -> None:
        if self._owns_broker:
            self.broker.close()
        if self._owns_engine:
            self.engine.dispose()
