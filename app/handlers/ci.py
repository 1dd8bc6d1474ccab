"""The repository's own CI on a pull request Draftsmith opened: a failure starts a bounded fix, and a pass
after a fix marks the PR ready. Other apps' check suites only; never a person's PR."""

from __future__ import annotations

from app.events.router import Router
from app.github import ci_checks, render
from app.handlers.context import Context
from app.tasks import intake
from app.tasks.intake import Trigger
from app.tasks.states import ACTIVE, Status

router = Router()


@router.register("check_suite", action="completed")
async def fix_failing_ci(ctx: Context) -> None:
    suite = ctx.event.payload["check_suite"]
    identity = await ctx.identity()
    if identity is None or ctx.gh is None or (suite.get("app") or {}).get("id") == identity.id:
        return
    for pull in suite.get("pull_requests") or []:
        await _follow_ci(ctx, identity.id, pull["number"], suite["head_sha"])


async def _follow_ci(ctx: Context, own_app_id: int, number: int, sha: str) -> None:
    repo = ctx.repository.full_name
    opening = ctx.tasks.opening_task_for_pr(repo, number)
    if opening is None:
        return  # a person's PR: their CI is theirs
    latest = ctx.tasks.task_for_pr(repo, number)
    if latest is None or Status(latest.status) in ACTIVE or latest.head_sha != sha:
        return  # a run is on its way, or this head is not the bot's latest (a person pushed: it is theirs now)
    loaded = await ctx.config.load()
    fix_ci = loaded.config.fix_ci
    if not fix_ci.enabled:
        return
    state = await ci_checks.ci_state(ctx.gh, ctx.repository.owner, ctx.repository.name, sha, own_app_id)
    if not state.completed:
        return  # the last suite to finish decides
    attempts = ctx.tasks.ci_fix_streak(repo, number)
    if not state.failed:
        if attempts:
            await ctx.report.ci_passed(latest, sha, attempts)
        return
    if attempts >= fix_ci.max_attempts:
        await ctx.report.ci_note(latest, render.ci_marker(sha, "handover"), render.ci_handover_comment(
            state.failed, attempts=attempts, sha=sha, prefix=loaded.config.command_prefix))
        return
    await intake.start_task(ctx, Trigger(
        number=number, kind="ci", is_pull_request=True, title=latest.title, on_behalf_of=opening.requester,
        instruction=render.ci_fix_instruction(state.failed, attempt=attempts + 1, max_attempts=fix_ci.max_attempts,
                                              sha=sha),
    ))
