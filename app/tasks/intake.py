"""Turning a trigger into a task: who may ask, is the issue busy, are limits reached, then acknowledge and queue."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

from app import audit, policy
from app.agents import registry
from app.engines import lifecycle
from app.engines.publish import Outcome
from app.github import gitdata, render
from app.models import Task
from app.tasks.states import Status


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
    new_pr: bool = False  # on someone's pull request: a new PR instead of commits on theirs
    # Not asked by the event's sender (a CI fix after another app's check suite): who the task is for,
    # checked for write access like any requester; refusals are silent since nobody asked.
    on_behalf_of: str | None = None


async def start_task(ctx, trigger: Trigger) -> Task | None:
    """Create, acknowledge and queue a task for `trigger`, or reply saying why not. Returns the task.

    `ctx` is the handler's app.handlers.context.Context (its identity, config, tasks and report).
    """
    await ctx.identity()
    requester = trigger.on_behalf_of or ctx.event.sender_login or ""
    if trigger.on_behalf_of is None and ctx.sender_is_ignored():
        return None
    if not ctx.config.read:
        # The config and the requester's permission are independent reads: make them together.
        await asyncio.gather(ctx.config.load(), ctx.permission(requester))
    loaded = await ctx.config.load()
    if trigger.on_behalf_of is None and ctx.sender_is_ignored(loaded):
        ctx.log.info("ignored trigger from a bot", sender=ctx.event.sender_login)
        return None
    tasks, reporter = ctx.tasks, ctx.report
    repo_full_name = ctx.repository.full_name
    if loaded.blocking:
        # Only people who may ask learn about the file; a refused config never falls back to another agent.
        audit.record(ctx.engine, actor=requester, action="config.error", repo=repo_full_name,
                     installation_id=ctx.event.installation_id, subject=loaded.source,
                     source=trigger_source(ctx, trigger.number),
                     details="did not start: " + "; ".join(map(str, loaded.blocking[:10])))
        if trigger.on_behalf_of is None and await ctx.may_ask(loaded, trigger.number):
            await reporter.reply(repo_full_name, trigger.number,
                                 render.config_error_comment(loaded.errors, loaded.source))
        return None
    if loaded.errors and trigger.on_behalf_of is None:
        audit.record(ctx.engine, actor=requester, action="config.error", repo=repo_full_name,
                     installation_id=ctx.event.installation_id, subject=loaded.source,
                     source=trigger_source(ctx, trigger.number), details="; ".join(map(str, loaded.errors[:10])))
        await reporter.reply(repo_full_name, trigger.number, render.config_error_comment(loaded.errors, loaded.source))
    if trigger.on_behalf_of is not None:
        if not policy.has_permission(await ctx.permission(requester), loaded.config.required_permission):
            ctx.log.info("not starting for a requester without access", requester=requester)
            return None
    elif not await ctx.may_ask(loaded, trigger.number):
        return None
    config = loaded.config

    if (earlier := tasks.task_for_delivery(ctx.event.delivery_id)) is not None:
        # This delivery is being handled again: its task exists. It is on its way unless the attempt that
        # created it died before queueing its run (see _resume_interrupted).
        return await _resume_interrupted(ctx, earlier, trigger, config.command_prefix)
    if not registry.is_known(trigger.agent or config.agent):
        # Refused before any task exists: no failed task, no red check run, no draft PR for a typo.
        await reporter.reply(repo_full_name, trigger.number, render.unknown_agent_reply(
            trigger.agent or config.agent, registry.names(), asked=bool(trigger.agent), source=loaded.source,
            prefix=config.command_prefix))
        return None
    active = tasks.active_task_for(repo_full_name, trigger.number)
    queue_behind = False
    if active is not None:
        if trigger.on_behalf_of is not None:
            return None  # a run is on its way already; its own push gets CI of its own
        if config.on_busy != "queue":
            await reporter.reply(repo_full_name, trigger.number,
                                 render.busy_reply(active, reporter.task_url(active), config.command_prefix))
            return None
        queue_behind = True

    installation_id = ctx.event.installation_id
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    exceeded = policy.check_limits(
        today_count=tasks.count_since(installation_id, midnight),
        cost_today=tasks.cost_since(installation_id, midnight),
        limits=policy.Limits.from_settings(ctx.settings),
        now=now,
    )
    if exceeded is not None:
        await reporter.reply(repo_full_name, trigger.number, render.limit_reply(exceeded))
        return None

    follow_up = tasks.task_for_pr(repo_full_name, trigger.number) if trigger.is_pull_request else None
    theirs = None
    if trigger.is_pull_request and follow_up is None and trigger.mode == "run" and not trigger.new_pr:
        theirs = await _their_pull_request(ctx, trigger.number, config.command_prefix)
        if theirs is None:
            return None
    created = tasks.create(
        installation_id=installation_id,
        repo_full_name=repo_full_name,
        issue_number=trigger.number,
        is_pull_request=trigger.is_pull_request,
        title=trigger.title or (follow_up.title if follow_up else ""),
        requester=requester,
        trigger=trigger.kind,
        trigger_comment_id=trigger.comment_id or trigger.review_comment_id,
        delivery_id=ctx.event.delivery_id,
        instruction=trigger.instruction,
        mode=trigger.mode,
        agent=trigger.agent or config.agent,
        model=trigger.model or config.model,
        runner=config.effective_runner(ctx.settings.default_runner),
        base_branch=(trigger.base or (follow_up.base_branch if follow_up else None) or (theirs and theirs.base)
                     or ctx.repository.default_branch),
        # A follow-up on a PR (ours or a colleague's) commits on top of its branch; a new task's draft PR
        # gets this one (or the next free name).
        branch=follow_up.branch if follow_up else theirs.branch if theirs else (
            gitdata.branch_name(config.branch_prefix, trigger.number, trigger.title) if trigger.mode == "run" else None),
        pr_number=follow_up.pr_number if follow_up else theirs.number if theirs else None,
    )
    audit.record(ctx.engine, actor=created.task.requester, action="task.triggered", repo=repo_full_name,
                 installation_id=installation_id, subject=f"task {created.task.id}",
                 source=trigger_source(ctx, trigger.number),
                 details=f"{trigger.mode} with {created.task.agent}: {(trigger.instruction or trigger.title)[:200]}")
    ahead = None if queue_behind else tasks.runs_ahead(created.run.id)
    try:
        task = await reporter.acknowledge(created.task, created.run, comment_id=trigger.comment_id,
                                          review_comment_id=trigger.review_comment_id, ahead=ahead)
        if not ahead or ahead < ctx.settings.run_slots:
            # A task deep in the queue gets its draft PR when it starts (lifecycle), so that under a burst
            # the acknowledgements behind it do not wait for drafts opened long before they are needed.
            task = await lifecycle.open_draft(ctx.runtime, tasks, reporter, task, created.run)
    except Exception as exc:  # the task exists now: it must end visibly, never sit queued
        if ctx.will_retry(exc):
            # GitHub is briefly away (a 502 past the client's retries, a rate limit): the delivery is
            # tried again with back-off, and that attempt carries this task on (_resume_interrupted).
            raise
        await _setup_failed(ctx, created.run.id, exc, config.command_prefix)
        return None
    if task is None:
        return None
    if queue_behind:
        tasks.release_run(created.run.id)  # the task ahead of it asks for a slot when it ends
        await reporter.reply(repo_full_name, trigger.number,
                             render.queued_behind_reply(active, reporter.task_url(active), config.command_prefix))
        return task
    enqueue_run(ctx, created.run.id)
    return task


@dataclass(frozen=True)
class _TheirPullRequest:
    number: int
    branch: str
    base: str


async def _their_pull_request(ctx, number: int, prefix: str) -> _TheirPullRequest | None:
    """A person's open PR whose branch is in this repository, which the task will commit on; None after
    replying why not (a fork's branch, a closed PR)."""
    owner, repo = ctx.repository.full_name.split("/", 1)
    pr = (await ctx.gh.rest.pulls.async_get(owner, repo, number)).json()
    head_repo = (pr["head"].get("repo") or {}).get("full_name")
    if head_repo != ctx.repository.full_name:
        await ctx.report.reply(ctx.repository.full_name, number, render.fork_pr_reply(head_repo, prefix))
        return None
    if pr["state"] != "open":
        await ctx.report.reply(ctx.repository.full_name, number, render.closed_pr_reply(prefix))
        return None
    return _TheirPullRequest(number, pr["head"]["ref"], pr["base"]["ref"])


async def _resume_interrupted(ctx, task: Task, trigger: Trigger, prefix: str) -> Task:
    """Finish the intake of a task whose first attempt was cut short between creating it and queueing its run.

    A worker killed there (serve stopped it past its grace period, a crash) leaves the task queued with a
    run no message names; its delivery is handled again once the sweeper presumes that worker dead, and
    without this the task would show "Queued" until the stranded-run sweep, ten minutes later. The earlier
    attempt is known to be over when this is a retry of our own (it failed), or presumed so, by the
    sweeper's own rule, when the run has waited longer than the heartbeat timeout: before that it may be
    a duplicate message handled beside the first, still opening the draft.
    """
    tasks = ctx.tasks
    run = tasks.latest_run(task.id)
    if run is None or task.status != Status.QUEUED.value or run.status != Status.QUEUED.value:
        return task
    if not run.held:  # the first attempt finished setting it up: it is on its way (a slot may be starting it)
        return task
    queued_at = run.queued_at if run.queued_at.tzinfo else run.queued_at.replace(tzinfo=UTC)
    waited = (datetime.now(UTC) - queued_at).total_seconds()
    if not ctx.attempt and waited < ctx.settings.heartbeat_timeout_seconds:
        return task
    ctx.log.info("task_intake_resumed", task_id=task.id, run_id=run.id, waited_seconds=round(waited, 1))
    try:
        # It may have posted the progress comment and died before recording it.
        task = await ctx.report.adopt_progress_comment(task)
        if task.progress_comment_id is None:
            task = await ctx.report.acknowledge(task, run, comment_id=trigger.comment_id,
                                                review_comment_id=trigger.review_comment_id)
        # As the first attempt would have: so GitHub still failing here is retried, or told, as at intake.
        opened = await lifecycle.open_draft(ctx.runtime, tasks, ctx.report, task, run)
    except Exception as exc:
        if ctx.will_retry(exc):
            raise
        await _setup_failed(ctx, run.id, exc, prefix)
        return task
    if opened is None:
        return task  # the base branch is gone: the task failed, saying so
    task = opened
    active = tasks.active_task_for(task.repo_full_name, task.issue_number)
    if active is not None and active.id != task.id:
        tasks.release_run(run.id)  # queued behind another task on purpose: that one asks for a slot when it ends
        return task
    enqueue_run(ctx, run.id)
    return task


async def _setup_failed(ctx, run_id: int, exc: Exception, prefix: str) -> None:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    cause = f"GitHub answered {status}" if status else type(exc).__name__
    ctx.log.warning("task_setup_failed", run_id=run_id, error_type=type(exc).__name__, status=status)
    reason = (f"Draftsmith could not set this task up ({cause}). Nothing ran; reply "
              f"`{prefix} retry` to try again.")
    try:
        await lifecycle.finish(ctx.runtime, ctx.tasks, ctx.report, run_id, Outcome(Status.FAILED, reason))
    except Exception:  # GitHub is still down: the task is failed in the database, and its page says why
        ctx.log.warning("task_setup_failure_not_reported", run_id=run_id, exc_info=True)


def trigger_source(ctx, number: int) -> str:
    """Where a person asked, for the audit log: "issue_comment on #5", "check_run requested_action"..."""
    event = ctx.event
    return f"{event.name}{' ' + event.action if event.action else ''} on #{number}"


def enqueue_run(ctx, run_id: int) -> None:
    """Once the run is acknowledged (and its draft open): release it and ask for a run slot; if the queue is
    down, the sweeper asks again later."""
    ctx.tasks.release_run(run_id)
    lifecycle.queue_run(ctx.runtime)
