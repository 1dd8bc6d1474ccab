"""Fixtures for the Actions engine tests: a task with a run, a recording event handler, the callback app."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette

from app.db import session_scope
from app.engines.actions.oidc import OIDCVerifier
from app.models import Run, Task
from app.engines.actions.callbacks import RunCallbacks, RunResult, make_routes
from tests.actions._oidc_issuer import FakeIssuer

AUDIENCE = "https://draftsmith.example.test"


@dataclass
class RecordingHandler:
    """Stands in for the app's reaction (commit, PR, check run); it records what reached it."""

    stages: list[tuple[int, str]] = field(default_factory=list)
    results: list[tuple[int, RunResult]] = field(default_factory=list)
    fail_next_result: bool = False
    alive_calls: list[int] = field(default_factory=list)

    def alive(self, run_id: int) -> None:
        self.alive_calls.append(run_id)

    async def progress(self, run_id: int, stage: str) -> None:
        self.stages.append((run_id, stage))

    async def result(self, run_id: int, result: RunResult) -> None:
        if self.fail_next_result:
            self.fail_next_result = False
            raise RuntimeError("GitHub was down")
        self.results.append((run_id, result))


def make_task_and_run(engine, repo: str = "octo/demo") -> int:
    with session_scope(engine) as session:
        task = Task(installation_id=1, repo_full_name=repo, issue_number=7, requester="alice",
                    trigger="assignment", runner="actions", agent="command", instruction="Fix the typo",
                    base_branch="main", base_sha="0" * 40)
        session.add(task)
        session.flush()
        run = Run(task_id=task.id)
        session.add(run)
        session.flush()
        return run.id


@pytest.fixture
def handler():
    return RecordingHandler()


@pytest.fixture
def issuer():
    return FakeIssuer()


@pytest.fixture
async def callback_app(engine, handler, issuer):
    async with issuer.http_client() as http:
        verifier = OIDCVerifier(AUDIENCE, issuer=issuer.issuer, http=http)
        callbacks = RunCallbacks(engine=engine, handler=handler, oidc=verifier, secrets=["hunter2-secret"])
        yield Starlette(routes=make_routes(callbacks))


@pytest.fixture
async def client(callback_app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=callback_app), base_url="http://app") as c:
        yield c
