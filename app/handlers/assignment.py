"""Issue assignment and labels: assigning the bot (or adding the trigger label) starts a task."""

from __future__ import annotations

from app.events.router import Router
from app.tasks import intake
from app.tasks.intake import Trigger

router = Router()


def _issue_trigger(issue: dict, kind: str) -> Trigger:
    return Trigger(
        number=issue["number"], kind=kind, title=issue.get("title") or "",
        is_pull_request=issue.get("pull_request") is not None,
    )


@router.register("issues", action="assigned")
async def start_task_on_assignment(ctx) -> None:
    identity = await ctx.identity()
    assignee = ctx.event.payload.get("assignee") or {}
    if identity is None or (assignee.get("login") or "").lower() != identity.bot_login.lower():
        return
    await intake.start_task(ctx, _issue_trigger(ctx.event.payload["issue"], "assignment"))


@router.register("issues", action="unassigned")
async def cancel_task_on_unassignment(ctx) -> None:
    identity = await ctx.identity()
    assignee = ctx.event.payload.get("assignee") or {}
    if identity is None or (assignee.get("login") or "").lower() != identity.bot_login.lower():
        return
    if intake.sender_is_ignored(ctx, identity):
        return
    from app.commands.verbs import cancel_active

    tasks, reporter = intake.services(ctx, identity)
    number = ctx.event.payload["issue"]["number"]
    if tasks.active_task_for(ctx.event.repo_full_name, number) is None:
        return  # unassigning after the work is done is not a request to undo anything
    await cancel_active(ctx, tasks, reporter, ctx.event.repo_full_name, number, comment_id=None,
                        reason=f"unassigned by @{ctx.event.sender_login}")


@router.register("issues", action="labeled")
async def start_task_on_trigger_label(ctx) -> None:
    identity = await ctx.identity()
    if identity is None or ctx.gh is None:
        return
    label = (ctx.event.payload.get("label") or {}).get("name")
    loaded = await intake.load_config(ctx)
    wanted = loaded.config.trigger_label
    if not wanted or not label or label.lower() != wanted.lower():
        return
    await intake.start_task(ctx, _issue_trigger(ctx.event.payload["issue"], "label"), loaded=loaded)
