"""A task's check run follows its PR's head; none it leaves behind stays 'in progress'."""

from __future__ import annotations

import asyncio

import pytest

from app.db import make_engine
from app.github.client import GitHubApp, TransientRetry
from app.github.report import Reporter
from app.migrate import upgrade
from app.settings import Settings
from app.tasks.service import TaskService
from app.tasks.states import Status

REPO = "octo/demo"


@pytest.fixture
def world(fakehub, tmp_path):
    """The App's client (no retries), a task service on a migrated database, and one new task on an issue."""
    fakehub.create_repo("octo", "demo", {"README.md": "hi\n"})
    fakehub.add_user("alice", permissions={REPO: "write"})
    number = fakehub.open_issue(REPO, "Docs", as_user="alice")
    app = GitHubApp(Settings(**fakehub.env()), retry=TransientRetry(max_retries=0, base_delay=0.01))
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    tasks = TaskService(engine)
    created = tasks.create(installation_id=fakehub.installation_id(REPO), repo_full_name=REPO, issue_number=number,
                           title="Docs", requester="alice", trigger="assignment", agent="command", base_branch="main")
    yield app, app.installation_client(fakehub.installation_id(REPO)), tasks, created
    engine.dispose()


def test_a_check_run_github_refused_to_close_when_the_head_moved_is_closed_when_the_task_ends(fakehub, world):
    # Given a task with its draft PR and check run on the start commit
    app, gh, tasks, created = world
    other_head = fakehub.as_app(REPO).get(f"/repos/{REPO}/branches/main").json()["commit"]["sha"]

    async def scenario() -> tuple[int, int]:
        report = Reporter(gh, tasks, identity=await app.identity())
        task = await report.open_draft(created.task, created.run)
        first = task.check_run_id
        started = tasks.start_run(created.run.id, worker="test")
        # When the head moves while GitHub answers 502 to closing the old check run
        fakehub.fault(f"/repos/{REPO}/check-runs/{first}", status=502, method="PATCH", count=1)
        task = await report.head_moved(started.task, started.run, other_head)
        assert fakehub.state.check_runs[first].status != "completed"
        # And then the task ends
        finished = tasks.finish(created.run.id, Status.SUCCEEDED)
        await report.finished(finished.task, finished.run)
        return first, finished.task.check_run_id

    first, current = asyncio.run(scenario())

    # Then the one left behind says where the check went, and the current one carries the end
    left = fakehub.state.check_runs[first]
    assert (left.status, left.conclusion) == ("completed", "neutral")
    assert left.output["title"].startswith("Continued on")
    assert fakehub.state.check_runs[current].status == "completed" and current != first


def test_a_check_run_a_dead_attempt_left_on_the_branch_head_is_closed_and_the_current_one_kept(fakehub, world):
    # Given a task's draft, and a second check run of the task on the branch's head that nothing recorded
    app, gh, tasks, created = world

    async def scenario() -> tuple[int, int]:
        report = Reporter(gh, tasks, identity=await app.identity())
        task = await report.open_draft(created.task, created.run)
        stray = fakehub.as_app(REPO).post(f"/repos/{REPO}/check-runs", json={
            "name": "Draftsmith", "head_sha": task.head_sha, "status": "in_progress",
            "external_id": str(task.id)}).json()["id"]
        # When the next attempt starts and looks
        assert await report.close_stray_check_runs(task) == 1
        assert await report.close_stray_check_runs(task) == 0
        return task.check_run_id, stray

    current, stray = asyncio.run(scenario())

    # Then the stray one is closed as continued, and the task's own is left as it was
    assert (fakehub.state.check_runs[stray].status, fakehub.state.check_runs[stray].conclusion) == ("completed", "neutral")
    assert fakehub.state.check_runs[current].status == "queued"
