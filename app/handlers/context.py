"""Context: what a handler gets for one event (the event, the runtime, a GitHub client, a bound logger)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.events.event import Event
from app.logs import get_logger

if TYPE_CHECKING:
    from githubkit import GitHub

    from app.github.client import AppIdentity
    from app.runtime import Runtime


@dataclass
class Context:
    event: Event
    runtime: Runtime
    # The installation's client, or None when the event has no installation or GitHub is not configured.
    gh: GitHub | None
    log: Any = field(default=None)

    def __post_init__(self) -> None:
        if self.log is None:
            self.log = get_logger(
                delivery_id=self.event.delivery_id,
                event=self.event.name,
                action=self.event.action,
                repo=self.event.repo_full_name,
            )

    @property
    def engine(self):
        return self.runtime.engine

    @property
    def settings(self):
        return self.runtime.settings

    @property
    def services(self) -> dict[str, Any]:
        """Services the task and report layers attach to the runtime (e.g. `ctx.services["tasks"]`)."""
        return self.runtime.services

    async def identity(self) -> AppIdentity | None:
        """The App's identity (slug, bot_login), read once per process from `GET /app`."""
        return await self.runtime.identity()

    @classmethod
    def for_event(cls, event: Event, runtime: Runtime) -> Context:
        gh = None
        if runtime.github is not None and event.installation_id is not None:
            gh = runtime.github.installation_client(event.installation_id)
        return cls(event=event, runtime=runtime, gh=gh)
