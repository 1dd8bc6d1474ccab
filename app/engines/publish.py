"""After the agent: push its changes to the draft PR's branch as the bot, and conclude the PR.

Shared by both engines: the sandbox pipeline snapshots the agent's workspace into the run's private repo;
the Actions engine applies the runner's patch there. So users see the same thing either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.agents.base import AgentResult
from app.db import session_scope
from app.github import render
from app.github.render import NO_CHANGES
from app.github.report import Reporter, Stage
from app.logs import scrub
from app.models import Artifact
from app.engines.git.branch_writer import BranchKeepsMoving, BranchWriter
from app.engines.git.changes import ChangesRefused, RebaseConflict
from app.engines.git.private_repo import GitError
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
    return render.commit_message(task, result.summary if result else None, task_url)


def _refused(exc: Exception, task, config) -> str:
    if isinstance(exc, RebaseConflict):
        return (f"`{task.branch}` received commits that conflict with the agent's changes, so they were not "
                f"pushed. Reply `{config.command_prefix} retry` to work on top of them.")
    if isinstance(exc, BranchKeepsMoving):
        return (f"`{task.branch}` kept moving while Draftsmith pushed, so the agent's last changes were not "
                f"pushed. Reply `{config.command_prefix} retry` once it is quiet.")
    return str(exc)


def _squash_onto(private, task, start_sha: str) -> str:
    """Where this run's commits begin: the base itself when the run starts at the draft's empty commit."""
    try:
        parent = private.rev_parse(f"{start_sha}^")
        trees = private.git("rev-parse", f"{start_sha}^{{tree}}", f"{parent}^{{tree}}").split()
        empty = trees[0] == trees[1]
    except GitError:
        return start_sha
    return parent if empty and parent == task.base_sha else start_sha


async def publish(
    *,
    engine,
    tasks: TaskService,
    report: Reporter,
    task_id: int,
    run_id: int,
    writer: BranchWriter,
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
    private, start_sha = writer.source.private, writer.start
    outcome = Outcome(Status.SUCCEEDED, agent=agent_result, agent_seconds=agent_seconds, tests_passed=tests_passed)

    await report.stage(task, run, Stage.COMMIT)
    try:
        snapshot = await asyncio.to_thread(take_snapshot)
        this_run = await asyncio.to_thread(private.changes, start_sha, snapshot)
        save_artifact(engine, run_id, "diff", this_run.diff, secrets)
        pushed = await writer.push(snapshot, commit_message(task, agent_result, report.task_url(task)))
        files = await asyncio.to_thread(writer.pr_files, task)
    except (ChangesRefused, RebaseConflict, BranchKeepsMoving) as exc:
        outcome.status, outcome.reason = Status.NEEDS_ATTENTION, _refused(exc, task, config)
        return outcome
    if not files:
        task = await report.no_changes(task, tasks.get_run(run_id), agent_result.summary if agent_result else "")
        outcome.reason = NO_CHANGES
        return outcome
    run = tasks.get_run(run_id)
    summary = agent_result.summary if agent_result else None
    if pushed is not None:
        log(f"committed {pushed.sha[:7]} to {writer.branch} ({len(pushed.changes.files)} files)")
    onto = _squash_onto(private, task, start_sha) if config.squash else start_sha
    squashed = None
    if config.squash and (writer.commits > 1 or (writer.commits == 1 and onto != start_sha)):
        squashed = await writer.squash(onto, commit_message(task, agent_result, report.task_url(task)))
        if squashed is not None:
            log(f"squashed this run's commits into {squashed[:7]}")
    if squashed or pushed:  # the check run moves to the new head, and the PR lists what changed
        task = await report.head_moved(task, run, squashed or pushed.sha, files=files, summary=summary)
    else:
        await report.pushed(task, run, files, agent_result)

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
    await report.conclude_pr(task, tasks.get_run(run.id), ready=ready)
    if not ready:
        outcome.reason = f"tests failed (`{config.test}`)"
    return outcome
