"""Review feedback on the bot's own pull request starts a follow-up run on the same branch."""

from __future__ import annotations

import re

from app.events.router import Router
from app.tasks import intake
from app.tasks.intake import Trigger
from app.tasks.service import TaskService

router = Router()

CHANGES_REQUESTED = "The reviewer requested changes; address the review comments on this pull request."


def _mentions(body: str, slug: str) -> bool:
    return re.search(rf"(?<![\w-])@{re.escape(slug)}(\[bot\])?(?![\w-])", body, re.IGNORECASE) is not None


def _where(comment: dict) -> str:
    return f"On `{comment.get('path')}` line {comment.get('line') or comment.get('original_line')}:\n"


def _is_request(review: dict) -> bool:
    # An approval or a bare comment without words is not a request; "changes requested" always is.
    return bool((review.get("body") or "").strip()) or (review.get("state") or "").lower() == "changes_requested"


async def _context(ctx):
    """(identity, the requester of our task on this PR), or None when the PR is not the bot's."""
    identity = await ctx.identity()
    if identity is None or ctx.gh is None:
        return None
    pr = ctx.event.payload["pull_request"]
    if (pr.get("user") or {}).get("login", "").lower() != identity.bot_login.lower():
        return None  # only our own PRs; elsewhere people use mentions or commands
    ours = TaskService(ctx.engine).task_for_pr(ctx.event.repo_full_name, pr["number"])
    return identity, (ours.requester.lower() if ours is not None else None)


def _addressed_to_us(ctx, text: str, identity, requester: str | None) -> bool:
    """Feedback counts when it mentions the bot or comes from the person who asked for the task."""
    return _mentions(text, identity.slug) or (requester is not None
                                              and requester == (ctx.event.sender_login or "").lower())


async def _comments_of_review(ctx, pr_number: int, review_id: int | None) -> list[dict]:
    if review_id is None:
        return []
    owner, repo = ctx.event.repo_full_name.split("/", 1)
    resp = await ctx.gh.rest.pulls.async_list_review_comments(owner, repo, pr_number, per_page=100)
    return [c for c in resp.json() if c.get("pull_request_review_id") == review_id]


def _review_instruction(review: dict, comments: list[dict]) -> str:
    parts = [(review.get("body") or "").strip() or CHANGES_REQUESTED]
    parts += [_where(c) + (c.get("body") or "") for c in comments]
    return "\n\n".join(parts)


async def _start(ctx, instruction: str, *, review_comment_id: int | None = None) -> None:
    pr = ctx.event.payload["pull_request"]
    await intake.start_task(ctx, Trigger(
        number=pr["number"], kind="review", instruction=instruction.strip(), is_pull_request=True,
        title=pr.get("title") or "", review_comment_id=review_comment_id,
    ))


@router.register("pull_request_review", action="submitted")
async def follow_up_on_review(ctx) -> None:
    """A review with words or changes requested: one follow-up carrying the review and its line comments."""
    review = ctx.event.payload["review"]
    if not _is_request(review):
        return  # its line comments, if any, arrive as pull_request_review_comment events
    found = await _context(ctx)
    if found is None:
        return
    identity, requester = found
    comments = await _comments_of_review(ctx, ctx.event.payload["pull_request"]["number"], review.get("id"))
    instruction = _review_instruction(review, comments)
    if _addressed_to_us(ctx, instruction, identity, requester):
        await _start(ctx, instruction)


@router.register("pull_request_review_comment", action="created")
async def follow_up_on_review_comment(ctx) -> None:
    """A single line comment; the comments of a review that is itself a request ride with that review."""
    comment = ctx.event.payload["comment"]
    found = await _context(ctx)
    if found is None:
        return
    identity, requester = found
    if not _addressed_to_us(ctx, comment.get("body") or "", identity, requester):
        return
    pr_number = ctx.event.payload["pull_request"]["number"]
    review_id = comment.get("pull_request_review_id")
    if review_id is not None:
        owner, repo = ctx.event.repo_full_name.split("/", 1)
        reviews = (await ctx.gh.rest.pulls.async_list_reviews(owner, repo, pr_number, per_page=100)).json()
        review = next((r for r in reviews if r.get("id") == review_id), None)
        if review is not None and _is_request(review):
            siblings = await _comments_of_review(ctx, pr_number, review_id)
            if _addressed_to_us(ctx, _review_instruction(review, siblings), identity, requester):
                return  # follow_up_on_review starts one task for the whole review
    await _start(ctx, _where(comment) + (comment.get("body") or ""), review_comment_id=comment["id"])
