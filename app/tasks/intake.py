"""Turning a trigger into a task: who may ask, is the issue busy, are limits reached, then acknowledge and queue."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from githubkit.exception import RequestFailed

from app import policy
from app.github import render
from app.github.report import Reporter
from app.github.repo_config import LoadedConfig, load_repo_config
from app.models import Task
from app.tasks.service import TaskService

# Collaborator permission answers are cached briefly: a burst of comments costs one API call, and a
# revoked permission takes effect within a minute.
PERMISSION_TTL_SECONDS = 60.0


@dataclass(frozen=True)
class Trigger:
    """What someone asked for, from any trigger (assignment, mention, command, label, review, button)."""

    number: int
    kind: str  # assignment | mention | command | label | review | check_run
    instruction: str = ""
    mode: str = "run"
    agent: str | None = None
    model: str | None = None
    base: str | None = None
    is_pull_request: bool = False
    title: str = ""
    comment_id: int | None = None
    review_comment_id: int | None = None


async def load_config(ctx) -> LoadedConfig:
    """The repository's config from its default branch; an invalid file gets one comment naming the error."""
    repository = ctx.event.payload["repository"]
    owner, repo = repository["full_name"].split("/", 1)
    return await load_repo_config(ctx.gh, owner, repo, repository.get("default_branch") or "main")


async def permission_of(ctx, login: str) -> str:
    repo_full_name = ctx.event.repo_full_name
    key = (repo_full_name, login.lower())
    # Kept on the runtime (one per process), not at module level, so nothing outlives its process setup.
    cache: dict = ctx.runtime.services.setdefault("permission_cache", {})
    cached = cache.get(key)
    if cached and time.monotonic() - cached[0] < PERMISSION_TTL_SECONDS:
        return cached[1]
    owner, repo = repo_full_name.split("/", 1)
    try:
        resp = await ctx.gh.rest.repos.async_get_collaborator_permission_level(owner, repo, login)
        permission = policy.permission_from_response(resp.json())
    except RequestFailed as exc:
        if exc.response.status_code != 404:  # 404: not a collaborator at all
            raise
        permission = "none"
    cache[key] = (time.monotonic(), permission)
    return permission


def services(ctx, identity) -> tuple[TaskService, Reporter]:
    tasks = TaskService(ctx.engine)
    return tasks, Reporter.for_runtime(ctx.runtime, ctx.gh, tasks, identity)


def sender_is_ignored(ctx, identity, loaded: LoadedConfig | None = None) -> bool:
    """Bots (and we ourselves) never trigger anything, unless the repository allows that bot.

    Without the config only our own bot is ruled out: a cheap first filter that breaks loops before any
    API call, while an allowed bot still gets its config read.
    """
    if loaded is None:
        return (ctx.event.sender_login or "").lower() == identity.bot_login.lower()
    allowed = loaded.config.allowed_bots
    decision = policy.decide_sender(ctx.event.sender_login or "", ctx.event.sender_type or "User",
                                    identity.bot_login, allowed)
    return not decision.allowed


async def may_ask(ctx, reporter: Reporter, loaded: LoadedConfig, number: int) -> bool:
    """Write access (or what the config requires); otherwise one polite reply."""
    login = ctx.event.sender_login or ""
    required = loaded.config.required_permission
    if policy.has_permission(await permission_of(ctx, login), required):
        return True
    await reporter.reply(ctx.event.repo_full_name, number, render.permission_refusal(login, required))
    return False


async def start_task(ctx, trigger: Trigger, *, loaded: LoadedConfig | None = None) -> Task | None:
    """Create, acknowledge and queue a task for `trigger`, or reply saying why not. Returns the task."""
    identity = await ctx.identity()
    if sender_is_ignored(ctx, identity):
        return None
    if loaded is None:
        # The config and the sender's permission are independent reads: make them together.
        loaded, _ = await asyncio.gather(load_config(ctx), permission_of(ctx, ctx.event.sender_login or ""))
    if sender_is_ignored(ctx, identity, loaded):
        ctx.log.info("ignored trigger from a bot", sender=ctx.event.sender_login)
        return None
    tasks, reporter = services(ctx, identity)
    repo_full_name = ctx.event.repo_full_name
    if loaded.errors:
        await reporter.reply(repo_full_name, trigger.number, render.config_error_comment(loaded.errors, loaded.source))
    if not await may_ask(ctx, reporter, loaded, trigger.number):
        return None
    config = loaded.config

    active = tasks.active_task_for(repo_full_name, trigger.number)
    queue_behind = False
    if active is not None:
        if config.on_busy != "queue":
            await reporter.reply(repo_full_name, trigger.number,
                                 render.busy_reply(active, reporter.task_url(active), config.command_prefix))
            return None
        queue_behind = True

    installation_id = ctx.event.installation_id
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    exceeded = policy.check_limits(
        active_count=tasks.count_active(installation_id),
        today_count=tasks.count_since(installation_id, midnight),
        cost_today=tasks.cost_since(installation_id, midnight),
        limits=policy.Limits.from_settings(ctx.settings),
        now=now,
    )
    if exceeded is not None:
        await reporter.reply(repo_full_name, trigger.number, render.limit_reply(exceeded))
        return None

    follow_up = tasks.task_for_pr(repo_full_name, trigger.number) if trigger.is_pull_request else None
    created = tasks.create(
        installation_id=installation_id,
        repo_full_name=repo_full_name,
        issue_number=trigger.number,
        is_pull_request=trigger.is_pull_request,
        title=trigger.title or (follow_up.title if follow_up else ""),
        requester=ctx.event.sender_login or "",
        trigger=trigger.kind,
        trigger_comment_id=trigger.comment_id or trigger.review_comment_id,
        delivery_id=ctx.event.delivery_id,
        instruction=trigger.instruction,
        mode=trigger.mode,
        agent=trigger.agent or config.agent,
        model=trigger.model or config.model,
        runner=config.runner,
        base_branch=trigger.base or (follow_up.base_branch if follow_up else None)
        or (ctx.event.payload.get("repository") or {}).get("default_branch"),
        # A follow-up on our own PR commits on top of its branch.
        branch=follow_up.branch if follow_up else None,
        pr_number=follow_up.pr_number if follow_up else (None),
    )
    task = await reporter.acknowledge(created.task, created.run, comment_id=trigger.comment_id,
                                      review_comment_id=trigger.review_comment_id)
    if queue_behind:
        await reporter.reply(repo_full_name, trigger.number,
                             render.queued_behind_reply(active, reporter.task_url(active), config.command_prefix))
        return task
    enqueue_run(ctx, created.run.id)
    return task


def enqueue_run(ctx, run_id: int) -> None:
    """Acknowledge first, then enqueue; if the queue is down the sweeper picks the queued run up later."""
    try:
        ctx.runtime.broker.get_actor("run_task").send(run_id)
    except Exception:
        ctx.log.warning("could not enqueue run; the sweeper will retry", run_id=run_id, exc_info=True)

