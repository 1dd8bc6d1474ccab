"""Context: what a handler gets for one event: the event, its repository, a GitHub client, the services, a logger."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from githubkit.exception import RequestFailed

from app import policy
from app.events.event import Event
from app.github import render
from app.github.report import Reporter
from app.github.repo_config import LoadedConfig, load_repo_config
from app.logs import get_logger
from app.tasks.service import TaskService

if TYPE_CHECKING:
    from githubkit import GitHub

    from app.github.client import AppIdentity
    from app.runtime import Runtime

# Collaborator permission answers are cached briefly: a burst of comments costs one API call, and a
# revoked permission takes effect within a minute.
PERMISSION_TTL_SECONDS = 60.0


@dataclass(frozen=True)
class EventRepository:
    """The repository an event is about, as its payload names it."""

    full_name: str
    default_branch: str | None = None

    @property
    def owner(self) -> str:
        return self.full_name.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.full_name.split("/", 1)[1]


class ConfigLoader:
    """The repository's `.github/draftsmith.yml`, read from its default branch only (so a fork or a pull
    request cannot change it), once per event however many handlers and verbs ask."""

    def __init__(self, gh: GitHub | None, repository: EventRepository | None) -> None:
        self.gh = gh
        self.repository = repository
        self._loaded: LoadedConfig | None = None

    @property
    def read(self) -> bool:
        return self._loaded is not None

    async def load(self) -> LoadedConfig:
        """The effective config; an invalid file still loads, with its problems in `errors`."""
        if self._loaded is None:
            repository = self.repository
            if repository is None:
                raise LookupError("this event names no repository")
            self._loaded = await load_repo_config(self.gh, repository.owner, repository.name,
                                                  repository.default_branch or "main")
        return self._loaded


@dataclass
class Context:
    """One event as its handlers see it. Handlers start with `await ctx.identity()` (or `ctx.authorise`),
    after which `ctx.report` can write as the App's bot."""

    event: Event
    runtime: Runtime
    # The installation's client, or None when the event has no installation or GitHub is not configured.
    gh: GitHub | None
    log: Any = field(default=None)
    # The App's identity, once `identity()` has read it.
    app: AppIdentity | None = field(default=None)
    # 0 the first time this delivery is handled; more when it is retried after a transient failure.
    attempt: int = 0
    # Whether raising `exc` from the handler has the delivery tried again later (the queue's retry policy);
    # a handler that would otherwise end a task over it can leave it to that attempt instead.
    will_retry: Callable[[BaseException], bool] = field(default=lambda exc: False)

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

    @cached_property
    def repository(self) -> EventRepository | None:
        repository = self.event.payload.get("repository")
        if not isinstance(repository, dict) or not repository.get("full_name"):
            return None
        return EventRepository(repository["full_name"], repository.get("default_branch"))

    @cached_property
    def tasks(self) -> TaskService:
        return TaskService(self.engine)

    @cached_property
    def report(self) -> Reporter:
        """Every write to GitHub for this event, as the App's bot."""
        if self.app is None:
            raise RuntimeError("the App's identity is not read yet: await ctx.identity() first")
        report = Reporter.for_runtime(self.runtime, self.gh, self.tasks, self.app)
        report.retrying = self.attempt > 0  # what the failed attempt already said is not said twice
        return report

    @cached_property
    def config(self) -> ConfigLoader:
        return ConfigLoader(self.gh, self.repository)

    async def identity(self) -> AppIdentity | None:
        """The App's identity (slug, bot_login), read once per process from `GET /app`; also `ctx.app`."""
        if self.app is None:
            self.app = await self.runtime.identity()
        return self.app

    def sender_is_ignored(self, loaded: LoadedConfig | None = None) -> bool:
        """Bots (and we ourselves) never trigger anything, unless the repository allows that bot.

        Without the config only our own bot is ruled out: a cheap first filter that breaks loops before any
        API call, while an allowed bot still gets its config read.
        """
        if self.app is None:
            raise RuntimeError("the App's identity is not read yet: await ctx.identity() first")
        if loaded is None:
            return (self.event.sender_login or "").lower() == self.app.bot_login.lower()
        decision = policy.decide_sender(self.event.sender_login or "", self.event.sender_type or "User",
                                        self.app.bot_login, loaded.config.allowed_bots)
        return not decision.allowed

    async def permission(self, login: str) -> str:
        """`login`'s permission on the event's repository (admin, maintain, write, triage, read or none)."""
        repository = self.repository
        key = (repository.full_name, login.lower())
        cached = self._permission_cache.get(key)
        if cached and time.monotonic() - cached[0] < PERMISSION_TTL_SECONDS:
            return cached[1]
        try:
            resp = await self.gh.rest.repos.async_get_collaborator_permission_level(
                repository.owner, repository.name, login)
            permission = policy.permission_from_response(resp.json())
        except RequestFailed as exc:
            if exc.response.status_code != 404:  # 404: not a collaborator at all
                raise
            permission = "none"
        self._permission_cache[key] = (time.monotonic(), permission)
        return permission

    @property
    def _permission_cache(self) -> dict[tuple[str, str], tuple[float, str]]:
        # Kept on the runtime (one per process), not at module level, so nothing outlives its process setup.
        return self.runtime.permission_cache

    async def may_ask(self, loaded: LoadedConfig, number: int) -> bool:
        """Whether the sender has write access (or what the config requires); otherwise one polite reply."""
        login = self.event.sender_login or ""
        required = loaded.config.required_permission
        if policy.has_permission(await self.permission(login), required):
            return True
        await self.report.reply(self.repository.full_name, number, render.permission_refusal(login, required))
        return False

    async def authorise(self, number: int) -> LoadedConfig | None:
        """The one preamble of a request on issue or PR `number`: the App's identity, the repository's config,
        and whether the sender may ask. Returns the config, or None when nothing should happen (no App, no
        installation client, or the sender may not ask and was told so)."""
        if await self.identity() is None or self.gh is None:
            return None
        loaded = await self.config.load()
        if not await self.may_ask(loaded, number):
            return None
        return loaded

    @classmethod
    def for_event(cls, event: Event, runtime: Runtime, attempt: int = 0,
                  will_retry: Callable[[BaseException], bool] | None = None) -> Context:
        gh = None
        if runtime.github is not None and event.installation_id is not None:
            gh = runtime.github.installation_client(event.installation_id)
        return cls(event=event, runtime=runtime, gh=gh, attempt=attempt,
                   will_retry=will_retry or (lambda exc: False))
