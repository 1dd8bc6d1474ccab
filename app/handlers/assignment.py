"""Issue assignment and labels: assigning the bot (or adding the trigger label) starts a task."""

from __future__ import annotations

from app.events.router import Router
from app.handlers.context import Context
from app.tasks import intake
from app.tasks.intake import Trigger

router = Router()


def _issue_trigger(issue: dict, kind: str) -> Trigger:
    return Trigger(
        number=issue["number"], kind=kind, title=issue.get("title") or "",
        is_pull_request=issue.get("pull_request") is not None,
    )


def _subject(payload: dict) -> dict:
    """The issue of an `issues` event, or the pull request of a `pull_request` one (GitHub sends those for
    assigning or labelling a PR), with what a trigger needs."""
    if "pull_request" in payload and "issue" not in payload:
        pr = payload["pull_request"]
        return {"number": pr["number"], "title": pr.get("title") or "", "pull_request": {"url": pr.get("url")}}
    return payload["issue"]


async def _assigns_us(ctx: Context) -> bool:
    identity = await ctx.identity()
    assignee = ctx.event.payload.get("assignee") or {}
    return identity is not None and (assignee.get("login") or "").lower() == identity.bot_login.lower()


@router.register("issues", action="assigned")
@router.register("pull_request", action="assigned")
async def start_task_on_assignment(ctx: Context) -> None:
    if await _assigns_us(ctx):
        await intake.start_task(ctx, _issue_trigger(_subject(ctx.event.payload), "assignment"))


@router.register("issues", action="unassigned")
@router.register("pull_request", action="unassigned")
async def cancel_task_on_unassignment(ctx: Context) -> None:
    if not await _assigns_us(ctx) or ctx.sender_is_ignored():
        return
    from app.commands.verbs import cancel_active

    repo, number = ctx.repository.full_name, _subject(ctx.event.payload)["number"]
    if ctx.tasks.active_task_for(repo, number) is None:
        return  # unassigning after the work is done is not a request to undo anything
    await cancel_active(ctx, repo, number, comment_id=None, reason=f"unassigned by @{ctx.event.sender_login}")


@router.register("issues", action="labeled")
@router.register("pull_request", action="labeled")
async def start_task_on_trigger_label(ctx: Context) -> None:
    if await ctx.identity() is None or ctx.gh is None:
        return
    label = (ctx.event.payload.get("label") or {}).get("name")
    wanted = (await ctx.config.load()).config.trigger_label
    if not wanted or not label or label.lower() != wanted.lower():
        return
    await intake.start_task(ctx, _issue_trigger(_subject(ctx.event.payload), "label"))
