"""Issue and PR comments: slash commands and @mentions (only new comments; edits never trigger)."""

from __future__ import annotations

from app.commands import verbs
from app.commands.grammar import Command, CommandError, parse
from app.events.router import Router
from app.github import render
from app.handlers.context import Context

router = Router()


@router.register("issue_comment", action="created")
async def act_on_commands_in_comment(ctx: Context) -> None:
    payload = ctx.event.payload
    identity = await ctx.identity()
    if identity is None or ctx.gh is None:
        return
    comment, issue = payload["comment"], payload["issue"]
    body = comment.get("body") or ""
    # Cheap checks first: most comments mention neither the prefix nor the bot.
    if "/" not in body and "@" not in body:
        return
    if ctx.sender_is_ignored():
        return
    loaded = await ctx.config.load()
    if ctx.sender_is_ignored(loaded):
        return
    is_pr = "pull_request" in issue and issue["pull_request"] is not None
    found = parse(body, app_slug=identity.slug, prefix=loaded.config.command_prefix, on_pull_request=is_pr)
    if not found:
        return
    number = issue["number"]
    for item in found:
        if isinstance(item, CommandError):
            await ctx.report.reply(ctx.repository.full_name, number,
                                   render.command_error_reply(item, loaded.config.command_prefix))
            continue
        assert isinstance(item, Command)
        await verbs.execute(ctx, item, number=number, is_pull_request=is_pr, title=issue.get("title") or "",
                            comment_id=comment["id"])
