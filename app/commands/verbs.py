"""One function per command verb (`/agent run`, `plan`, `cancel`, `retry`, `status`, `help`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from app import audit
from app.agents import registry
from app.commands.grammar import Command
from app.github import render
from app.engines import lifecycle
from app.tasks import intake
from app.tasks.intake import Trigger
from app.tasks.states import Status

if TYPE_CHECKING:  # app.handlers imports this module (comments, check_runs)
    from app.handlers.context import Context

VerbHandler = Callable[..., Awaitable[None]]
_VERBS: dict[str, VerbHandler] = {}


def command(verb: str) -> Callable[[VerbHandler], VerbHandler]:
    def decorator(func: VerbHandler) -> VerbHandler:
        _VERBS[verb] = func
        return func

    return decorator


async def execute(ctx: Context, cmd: Command, *, number: int, is_pull_request: bool, title: str,
                  comment_id: int | None) -> None:
    await _VERBS[cmd.verb](ctx, cmd, number=number, is_pull_request=is_pull_request, title=title,
                           comment_id=comment_id)


@command("run")
@command("plan")
async def run_or_plan(ctx: Context, cmd: Command, *, number, is_pull_request, title, comment_id) -> None:
    await intake.start_task(ctx, Trigger(
        number=number, kind="mention" if cmd.via_mention else "command", instruction=cmd.instruction,
        mode=cmd.verb, agent=cmd.agent, model=cmd.model, base=cmd.base, is_pull_request=is_pull_request,
        title=title, comment_id=comment_id, new_pr=cmd.new_pr,
    ))


@command("cancel")
async def cancel(ctx: Context, cmd: Command, *, number, comment_id, **_) -> None:
    if await ctx.authorise(number) is None:
        return
    await cancel_active(ctx, ctx.repository.full_name, number, comment_id=comment_id,
                        reason=f"cancelled by @{ctx.event.sender_login}")


async def cancel_active(ctx: Context, repo: str, number: int, *, comment_id: int | None, reason: str) -> bool:
    tasks, reporter = ctx.tasks, ctx.report
    active = tasks.active_task_for(repo, number)
    if active is None:
        await reporter.reply(repo, number, render.nothing_to_cancel())
        return False
    changed = tasks.request_cancel(active.id, reason=reason)
    audit.record(ctx.engine, actor=ctx.event.sender_login or "", action="task.cancelled", repo=repo,
                 installation_id=active.installation_id, subject=f"task {active.id}",
                 source=intake.trigger_source(ctx, number), details=reason)
    if comment_id:
        await reporter.react(repo, comment_id=comment_id, content="+1")
    if changed is not None and changed.task.status == "cancelled":
        # It never started: write the final state now (a running one is written by its worker).
        await lifecycle.report_end(tasks, reporter, changed)
    elif changed is not None:
        from app.engines.registry import engine_for

        await engine_for(active.runner).cancel(ctx.runtime, ctx.gh, changed.task, changed.run)
    return True


@command("retry")
async def retry(ctx: Context, cmd: Command, *, number, comment_id, **_) -> None:
    loaded = await ctx.authorise(number)
    if loaded is None:
        return
    await retry_latest(ctx, ctx.repository.full_name, number, comment_id=comment_id, agent=cmd.agent,
                       model=cmd.model, prefix=loaded.config.command_prefix)


async def retry_latest(ctx: Context, repo: str, number: int, *, comment_id: int | None,
                       agent: str | None = None, model: str | None = None, prefix: str = "/agent") -> None:
    tasks, reporter = ctx.tasks, ctx.report
    latest = tasks.latest_task_for(repo, number)
    if latest is None:
        await reporter.reply(repo, number, render.nothing_to_retry())
        return
    if latest.status in ("queued", "running"):
        await reporter.reply(repo, number, render.busy_reply(latest, reporter.task_url(latest), prefix))
        return
    if agent and not registry.is_known(agent):
        await reporter.reply(repo, number, render.unknown_agent_reply(agent, registry.names(), asked=True,
                                                                      prefix=prefix))
        return
    if agent or model:
        tasks.update(latest.id, **{k: v for k, v in (("agent", agent), ("model", model)) if v})
    again = tasks.retry(latest.id)
    audit.record(ctx.engine, actor=ctx.event.sender_login or "", action="task.retried", repo=repo,
                 installation_id=latest.installation_id, subject=f"task {latest.id}",
                 source=intake.trigger_source(ctx, number), details=f"attempt {again.run.attempt}")
    task = await reporter.acknowledge(again.task, again.run, comment_id=comment_id)
    await reporter.requeued(task, again.run)
    try:
        if await lifecycle.open_draft(ctx.runtime, tasks, reporter, task, again.run) is None:
            return
    except Exception:  # the worker opens the draft before it starts the run
        ctx.log.warning("draft_deferred_to_worker", run_id=again.run.id, exc_info=True)
    intake.enqueue_run(ctx, again.run.id)


@command("status")
async def status(ctx: Context, cmd: Command, *, number, **_) -> None:
    await ctx.identity()
    repo = ctx.repository.full_name
    latest = ctx.tasks.latest_task_for(repo, number)
    run = ctx.tasks.latest_run(latest.id) if latest else None
    ahead = ctx.tasks.runs_ahead(run.id) if run is not None and run.status == Status.QUEUED.value else None
    await ctx.report.reply(repo, number, render.status_reply(latest, run, ctx.report.task_url(latest) if latest else None,
                                                             ahead=ahead))


@command("help")
async def help_(ctx: Context, cmd: Command, *, number, **_) -> None:
    from app.agents.registry import all_agents

    identity = await ctx.identity()
    loaded = await ctx.config.load()
    agents = []
    for agent in all_agents():
        availability = agent.availability()
        agents.append((agent.name, availability.available, availability.reason))
    await ctx.report.reply(ctx.repository.full_name, number,
                           render.help_text(loaded.config, agents, slug=identity.slug))
