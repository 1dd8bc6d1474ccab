"""Helpers for end-to-end tests: a repository wired to the app, and waiting for tasks to settle."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from sqlmodel import Session, select

from app.models import LogLine, Run, Task
from app.tasks.states import ACTIVE

REPO = "octo/demo"


def person_pushes(url: str, tmp_path: Path, branch: str, path: str, content: str, *, author: str = "alice",
                  new_branch: bool = True) -> str:
    """A person commits `path` over git and pushes it to `branch` (a new one, or on top of it); the new head."""
    def git(*args: str, cwd: Path | None = None) -> str:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()

    clone = tmp_path / f"{author}-{branch.replace('/', '-')}"
    git("clone", "-q", *([] if new_branch else ["--branch", branch]), url, str(clone))
    if new_branch:
        git("checkout", "-q", "-b", branch, cwd=clone)
    (clone / path).write_text(content)
    git("add", path, cwd=clone)
    git("-c", f"user.name={author}", "-c", f"user.email={author}@example.com", "commit", "-qm", f"edit {path}",
        cwd=clone)
    git("push", "-q", "origin", f"HEAD:{branch}", cwd=clone)
    return git("rev-parse", "HEAD", cwd=clone)


def command_config(command: str, **extra) -> str:
    # JSON strings and lists are valid YAML flow scalars; repr() is not once a line has both quote kinds.
    lines = ["agent: command", f"command: {json.dumps(command)}"]
    for key, value in extra.items():
        lines.append(f"{key}: {json.dumps(value)}" if isinstance(value, (str, list)) else f"{key}: {value}")
    return "\n".join(lines) + "\n"


def store_credentials(app, installation_id: int, **values: str) -> None:
    """As `draftsmith credentials set --installation ID NAME` would."""
    from app.credentials import CredentialStore, load_keyring

    store = CredentialStore(app.engine, load_keyring(app.settings))
    for name, value in values.items():
        store.set(installation_id, name, value)


class Scene:
    """One repository on the fake GitHub with the App installed and people with known permissions."""

    def __init__(self, fakehub, draftsmith) -> None:
        self.hub = fakehub
        self.app = draftsmith
        self.bot = fakehub.bot_login

    def repo(self, config: str | None, files: dict[str, str] | None = None, name: str = REPO) -> str:
        contents = {"README.md": "# Demo\n\nA tpyo here.\n"}
        contents.update(files or {})
        if config is not None:
            contents[".github/draftsmith.yml"] = config
        owner, repo = name.split("/")
        self.hub.create_repo(owner, repo, contents)
        self.hub.add_user("alice", permissions={name: "write"})
        self.hub.add_user("rita", permissions={name: "read"})
        return name

    def tasks(self) -> list[Task]:
        with Session(self.app.engine) as session:
            return list(session.exec(select(Task).order_by(Task.id)).all())

    def runs(self, task_id: int) -> list[Run]:
        with Session(self.app.engine) as session:
            return list(session.exec(select(Run).where(Run.task_id == task_id).order_by(Run.attempt)).all())

    def logs(self, run_id: int) -> list[LogLine]:
        with Session(self.app.engine) as session:
            return list(session.exec(select(LogLine).where(LogLine.run_id == run_id).order_by(LogLine.seq)).all())

    def wait_settled(self, timeout: float = 60.0) -> list[Task]:
        """Wait until deliveries are processed and no task is queued or running."""
        deadline = time.monotonic() + timeout
        while True:
            self.app.join(timeout=max(1.0, deadline - time.monotonic()))
            tasks = self.tasks()
            if not any(t.status in ACTIVE for t in tasks):
                self.app.join(timeout=max(1.0, deadline - time.monotonic()))
                return self.tasks()
            if time.monotonic() > deadline:
                raise TimeoutError(f"tasks still active: {[(t.id, t.status) for t in tasks]}")
            time.sleep(0.05)

    def assign_in_turn(self, titles: list[str], repo: str = REPO) -> list[int]:
        """Issues opened and the bot assigned on each, one acknowledged before the next: each task's place
        in the queue is then known."""
        numbers = []
        for title in titles:
            numbers.append(self.hub.open_issue(repo, title, ""))
            self.hub.assign(repo, numbers[-1], self.bot)
            self.app.join_deliveries()
        return numbers

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"timed out waiting for {what}")

    def comments(self, number: int, repo: str = REPO):
        return [c for c in self.hub.state.comments.values() if c.repo == repo and c.issue_number == number]

    def bot_comments(self, number: int, repo: str = REPO):
        return [c for c in self.comments(number, repo) if c.user.login == self.bot]

    def check_runs(self, repo: str = REPO):
        return [c for c in self.hub.state.check_runs.values() if c.repo == repo]

    def check_run(self, task: Task | None = None, repo: str = REPO):
        """Draftsmith's live check run of `task` (the only task by default), which must sit on the task's
        head; the ones it left on older commits are closed as neutral without buttons, none on the base."""
        if task is None:
            [task] = self.tasks()
        else:
            task = next(t for t in self.tasks() if t.id == task.id)
        ours = [c for c in self.check_runs(repo) if c.external_id == str(task.id)]
        [current] = [c for c in ours if c.id == task.check_run_id]
        assert current.head_sha == task.head_sha, "the check run is on the PR's head"
        for earlier in ours:
            if earlier is not current:
                assert (earlier.status, earlier.conclusion, earlier.actions) == ("completed", "neutral", [])
        base_head = self.branch_head(task.base_branch or "main", repo)
        assert base_head not in {c.head_sha for c in ours}, "no Draftsmith check run on the base branch"
        return current

    def branch_head(self, branch: str, repo: str = REPO) -> str | None:
        from app.fakehub import git

        return git.resolve_ref(git.open_repo(self.hub.repo(repo).git_dir), f"refs/heads/{branch}")

    def pulls(self, repo: str = REPO):
        return self.hub.repo(repo).pulls


@pytest.fixture
def scene(fakehub, draftsmith) -> Scene:
    return Scene(fakehub, draftsmith)


@pytest.fixture
def make_scene(fakehub, make_draftsmith):
    """A scene whose app gets settings overrides (time limit, heartbeat timeout, ...)."""

    def make(**overrides) -> Scene:
        server = make_draftsmith(fakehub.env(), **overrides)
        fakehub.webhook_url = server.webhook_url
        return Scene(fakehub, server)

    return make
