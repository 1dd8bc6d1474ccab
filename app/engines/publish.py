"""After the agent: commit its changes as the bot, open or update the draft PR, and conclude it.

Shared by both engines: the sandbox pipeline snapshots the agent's workspace into the run's private repo;
the Actions engine applies the runner's patch there. So users see the same thing either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.agents.base import AgentResult
from app.db import session_scope
from app.github import gitdata
from app.github.report import Reporter, Stage
from app.logs import scrub
from app.models import Artifact
from app.engines.git.changes import Changes, ChangesRefused, RebaseConflict
from app.engines.git.source import RepositorySource
from app.tasks.service import TaskService
from app.tasks.states import Status


@dataclass
class Outcome:
    """How a run ended, before it is written to the task (by TaskService.finish)."""

    status: Status
    reason: str | None = None
    agent: AgentResult | None = None
    tests_passed: bool | None = None
    agent_seconds: float | None = None
    exit_code: int | None = None


def save_artifact(engine, run_id: int, kind: str, content: str | None, secrets: list[str]) -> None:
    if not content:
        return
    with session_scope(engine) as session:
        session.add(Artifact(run_id=run_id, kind=kind, content=scrub(content, secrets)))


def commit_message(task, result: AgentResult | None, task_url: str | None = None) -> str:
    subject = (task.title or task.instruction or f"issue #{task.issue_number}").splitlines()[0][:60]
    body = ((result.summary if result else "") or "").strip()[:4000]
    trailer = f"Co-authored-by: {task.requester} <{task.requester}@users.noreply.github.com>"
    ref = f"Task #{task.issue_number}" if not task.is_pull_request else f"Follow-up on #{task.issue_number}"
    if task_url:  # from the commit back to the run that made it: its log, checklist and usage
        ref += f"\nSession log: {task_url}"
    parts = [subject, body, ref, trailer] if body else [subject, ref, trailer]
    return "\n\n".join(parts) + "\n"


async def _changes_to_commit(gh, task, source: RepositorySource, start_sha: str, take_snapshot: Callable[[], str],
                             log: Callable[[str], None], save_diff: Callable[[str], None]) -> tuple[str, Changes]:
    """(parent, changes): the snapshot's changes, rebased onto the base branch if it moved meanwhile.

    Raises ChangesRefused or RebaseConflict. Empty changes (also after a rebase: the same change may have
    landed on the base) mean there is nothing to commit.
    """
    private = source.private
    snapshot = await asyncio.to_thread(take_snapshot)
    changes = await asyncio.to_thread(private.changes, start_sha, snapshot)
    save_diff(changes.diff)
    if not changes.files or task.pr_number:
        return start_sha, changes  # a follow-up's branch is checked by move_branch instead
    owner, repo = task.repo_full_name.split("/", 1)
    head_now = await gitdata.branch_head(gh, owner, repo, task.base_branch)
    if not head_now or head_now == start_sha:
        return start_sha, changes
    log(f"{task.base_branch} moved to {head_now[:7]} while the agent worked; rebasing")
    parent = await source.fetch(task.base_branch)
    rebased = await asyncio.to_thread(private.rebase, snapshot, parent)
    return parent, await asyncio.to_thread(private.changes, parent, rebased)


async def publish(
    *,
    engine,
    tasks: TaskService,
    report: Reporter,
    task_id: int,
    run_id: int,
    source: RepositorySource,
    start_sha: str,
    take_snapshot: Callable[[], str],
    config,
    agent_result: AgentResult | None,
    log: Callable[[str], None],
    secrets: list[str],
    run_tests: Callable[[], Awaitable[bool | None]] | None = None,
    tests_passed: bool | None = None,
    agent_seconds: float | None = None,
) -> Outcome:
    task, run = tasks.get(task_id), tasks.get_run(run_id)
    owner, repo = task.repo_full_name.split("/", 1)
    gh = report.gh
    base_branch = task.base_branch
    outcome = Outcome(Status.SUCCEEDED, agent=agent_result, agent_seconds=agent_seconds, tests_passed=tests_passed)

    await report.stage(task, run, Stage.COMMIT)
    try:
        parent, changes = await _changes_to_commit(gh, task, source, start_sha, take_snapshot, log,
                                                   lambda diff: save_artifact(engine, run_id, "diff", diff, secrets))
    except ChangesRefused as exc:
        outcome.status, outcome.reason = Status.NEEDS_ATTENTION, str(exc)
        return outcome
    except RebaseConflict:
        outcome.status = Status.NEEDS_ATTENTION
        outcome.reason = (f"`{base_branch}` moved while the agent worked and its changes no longer apply "
                          f"cleanly. Reply `{config.command_prefix} retry` to start again from the new head.")
        return outcome
    if not changes.files:
        await report.no_changes(task, run, agent_result.summary if agent_result else "")
        outcome.reason = "no changes"
        return outcome

    commit_sha = await gitdata.create_commit(gh, owner, repo, parent_sha=parent, changes=changes.files,
                                             message=commit_message(task, agent_result, report.task_url(task)))
    if task.pr_number and task.branch:
        try:
            await gitdata.move_branch(gh, owner, repo, task.branch, commit_sha)
        except gitdata.BranchMoved:
            outcome.status = Status.NEEDS_ATTENTION
            outcome.reason = (f"`{task.branch}` received other commits while the agent worked, so nothing was "
                              f"pushed. Reply `{config.command_prefix} retry` to work on top of them.")
            return outcome
        branch = task.branch
    else:
        branch = await gitdata.create_branch(
            gh, owner, repo, gitdata.branch_name(config.branch_prefix, task.issue_number, task.title), commit_sha)
    task = tasks.update(task.id, branch=branch, head_sha=commit_sha)
    log(f"committed {commit_sha[:7]} to {branch} ({len(changes.files)} files)")
    task = await report.open_or_update_pr(task, run, [c.path for c in changes.files], agent_result)

    if run_tests is not None and config.test:
        await report.stage(task, run, Stage.TESTS)
        log(f"tests: {config.test}")
        outcome.tests_passed = await run_tests()
    elif outcome.tests_passed is not None:
        await report.stage(task, run, Stage.TESTS)  # an Actions runner ran them before reporting
    if outcome.tests_passed is not None:
        tasks.update_run(run.id, tests_passed=outcome.tests_passed)
    task = tasks.get(task.id)
    ready = outcome.tests_passed is not False
    reason = None if ready else f"tests failed (`{config.test}`)"
    await report.conclude_pr(task, tasks.get_run(run.id), ready=ready, reason=reason)
    if not ready:
        outcome.reason = f"{reason}; the pull request stays a draft"
    return outcome
