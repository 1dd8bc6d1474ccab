"""Buttons on our check run: Cancel while running, Retry when failed, and GitHub's own Re-run."""

from __future__ import annotations

from app.commands.verbs import cancel_active, retry_latest
from app.events.router import Router
from app.handlers.context import Context
from app.models import Task

router = Router()


async def _our_task(ctx: Context) -> Task | None:
    identity = await ctx.identity()
    check_run = ctx.event.payload["check_run"]
    app = check_run.get("app") or {}
    if identity is None or ctx.gh is None or (app.get("id") not in (None, identity.id)):
        return None
    task = ctx.tasks.task_for_check_run(check_run["id"])
    if task is None and str(check_run.get("external_id") or "").isdigit():
        # A check run left on an older head of the PR (ours moved on): the task it names is still ours.
        task = ctx.tasks.get(int(check_run["external_id"]))
        if task is not None and task.repo_full_name != ctx.repository.full_name:
            return None
    return task


@router.register("check_run", action="requested_action")
async def act_on_check_run_button(ctx: Context) -> None:
    task = await _our_task(ctx)
    if task is None or (loaded := await ctx.authorise(task.issue_number)) is None:
        return
    identifier = (ctx.event.payload.get("requested_action") or {}).get("identifier")
    if identifier == "cancel":
        await cancel_active(ctx, task.repo_full_name, task.issue_number, comment_id=None,
                            reason=f"cancelled by @{ctx.event.sender_login} from the check run")
    elif identifier == "retry":
        await retry_latest(ctx, task.repo_full_name, task.issue_number, comment_id=None,
                           prefix=loaded.config.command_prefix)


@router.register("check_run", action="rerequested")
async def retry_on_rerun(ctx: Context) -> None:
    task = await _our_task(ctx)
    if task is None or (loaded := await ctx.authorise(task.issue_number)) is None:
        return
    await retry_latest(ctx, task.repo_full_name, task.issue_number, comment_id=None,
                       prefix=loaded.config.command_prefix)
