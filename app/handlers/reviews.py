"""Review feedback on the bot's own pull request starts a follow-up run on the same branch."""

from __future__ import annotations

import re

from app.events.router import Router
from app.handlers import _intake
from app.handlers._intake import Trigger
from app.tasks.service import TaskService

router = Router()


def _mentions(body: str, slug: str) -> bool:
    return re.search(rf"(?<![\w-])@{re.escape(slug)}(\[bot\])?(?![\w-])", body, re.IGNORECASE) is not None


async def _follow_up(ctx, body: str, *, review_comment_id: int | None = None, extra: str = "") -> None:
    identity = await ctx.identity()
    if identity is None or ctx.gh is None:
        return
    pr = ctx.event.payload["pull_request"]
    if (pr.get("user") or {}).get("login", "").lower() != identity.bot_login.lower():
        return  # only our own PRs; elsewhere people use mentions or commands
    tasks = TaskService(ctx.engine)
    ours = tasks.task_for_pr(ctx.event.repo_full_name, pr["number"])
    sender = (ctx.event.sender_login or "").lower()
    # Feedback counts when it mentions the bot or comes from the person who asked for the task.
    if not (_mentions(body, identity.slug) or (ours is not None and ours.requester.lower() == sender)):
        return
    instruction = (extra + body).strip()
    await _intake.start_task(ctx, Trigger(
        number=pr["number"], kind="review", instruction=instruction, is_pull_request=True,
        title=pr.get("title") or "", review_comment_id=review_comment_id,
    ))


@router.register("pull_request_review", action="submitted")
async def follow_up_on_review(ctx) -> None:
    review = ctx.event.payload["review"]
    body = review.get("body") or ""
    # An approval without words is not a request for changes; "changes requested" always is.
    if not body.strip() and review.get("state", "").lower() != "changes_requested":
        return
    if not body.strip():
        body = "The reviewer requested changes; address the review comments on this pull request."
    await _follow_up(ctx, body)


@router.register("pull_request_review_comment", action="created")
async def follow_up_on_review_comment(ctx) -> None:
    comment = ctx.event.payload["comment"]
    where = f"On `{comment.get('path')}` line {comment.get('line') or comment.get('original_line')}:\n"
    await _follow_up(ctx, comment.get("body") or "", review_comment_id=comment["id"], extra=where)
