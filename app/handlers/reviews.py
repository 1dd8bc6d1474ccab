"""Review feedback on the bot's own pull request starts a follow-up run on the same branch."""

from __future__ import annotations

import re

from app.events.router import Router
from app.handlers.context import Context
from app.tasks import intake
from app.tasks.intake import Trigger

router = Router()

CHANGES_REQUESTED = "The reviewer requested changes; address the review comments on this pull request."


def _mentions(body: str, slug: str) -> bool:
    return re.search(rf"(?<![\w-])@{re.escape(slug)}(\[bot\])?(?![\w-])", body, re.IGNORECASE) is not None


def _where(comment: dict) -> str:
    return f"On `{comment.get('path')}` line {comment.get('line') or comment.get('original_line')}:\n"


def _is_request(review: dict) -> bool:
    # An approval or a bare comment without words is not a request; "changes requested" always is.
    return bool((review.get("body") or "").strip()) or (review.get("state") or "").lower() == "changes_requested"


async def _our_pr(ctx: Context) -> tuple[bool, str | None]:
    """(whether the PR is the bot's, the requester of our task on it)."""
    identity = await ctx.identity()
    if identity is None or ctx.gh is None:
        return False, None
    pr = ctx.event.payload["pull_request"]
    if (pr.get("user") or {}).get("login", "").lower() != identity.bot_login.lower():
        return False, None  # only our own PRs; elsewhere people use mentions or commands
    ours = ctx.tasks.task_for_pr(ctx.repository.full_name, pr["number"])
    return True, (ours.requester.lower() if ours is not None else None)


def _addressed_to_us(ctx: Context, text: str, requester: str | None) -> bool:
    """Feedback counts when it mentions the bot or comes from the person who asked for the task."""
    return _mentions(text, ctx.app.slug) or (requester is not None
                                             and requester == (ctx.event.sender_login or "").lower())


async def _comments_of_review(ctx: Context, pr_number: int, review_id: int | None) -> list[dict]:
    if review_id is None:
        return []
    repository = ctx.repository
    resp = await ctx.gh.rest.pulls.async_list_review_comments(repository.owner, repository.name, pr_number,
                                                              per_page=100)
    return [c for c in resp.json() if c.get("pull_request_review_id") == review_id]


def _review_instruction(review: dict, comments: list[dict]) -> str:
    parts = [(review.get("body") or "").strip() or CHANGES_REQUESTED]
    parts += [_where(c) + (c.get("body") or "") for c in comments]
    return "\n\n".join(parts)


async def _start(ctx: Context, instruction: str, *, review_comment_id: int | None = None) -> None:
    pr = ctx.event.payload["pull_request"]
    await intake.start_task(ctx, Trigger(
        number=pr["number"], kind="review", instruction=instruction.strip(), is_pull_request=True,
        title=pr.get("title") or "", review_comment_id=review_comment_id,
    ))


@router.register("pull_request_review", action="submitted")
async def follow_up_on_review(ctx: Context) -> None:
    """A review with words or changes requested: one follow-up carrying the review and its line comments."""
    review = ctx.event.payload["review"]
    if not _is_request(review):
        return  # its line comments, if any, arrive as pull_request_review_comment events
    ours, requester = await _our_pr(ctx)
    if not ours:
        return
    comments = await _comments_of_review(ctx, ctx.event.payload["pull_request"]["number"], review.get("id"))
    instruction = _review_instruction(review, comments)
    if _addressed_to_us(ctx, instruction, requester):
        await _start(ctx, instruction)


@router.register("pull_request_review_comment", action="created")
async def follow_up_on_review_comment(ctx: Context) -> None:
    """A single line comment; the comments of a review that is itself a request ride with that review."""
    comment = ctx.event.payload["comment"]
    ours, requester = await _our_pr(ctx)
    if not ours or not _addressed_to_us(ctx, comment.get("body") or "", requester):
        return
    pr_number = ctx.event.payload["pull_request"]["number"]
    review_id = comment.get("pull_request_review_id")
    if review_id is not None:
        repository = ctx.repository
        reviews = (await ctx.gh.rest.pulls.async_list_reviews(repository.owner, repository.name, pr_number,
                                                               per_page=100)).json()
        review = next((r for r in reviews if r.get("id") == review_id), None)
        if review is not None and _is_request(review):
            siblings = await _comments_of_review(ctx, pr_number, review_id)
            if _addressed_to_us(ctx, _review_instruction(review, siblings), requester):
                return  # follow_up_on_review starts one task for the whole review
    await _start(ctx, _where(comment) + (comment.get("body") or ""), review_comment_id=comment["id"])
