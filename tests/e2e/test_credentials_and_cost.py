"""Provider keys and spending as users see them: missing keys, per-installation isolation, daily limits."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from app.credentials import CredentialStore, load_keyring
from app.github import render
from app.policy import next_utc_midnight
from app.tasks.service import TaskService
from app.tasks.states import Status
from tests.e2e.conftest import REPO, Scene, command_config

# Neither is token-shaped, so only scrubbing of the stored values themselves can hide them.
OUR_KEY = "octo-installation-key-5b8e2f1a9c7d"
THEIR_KEY = "other-installation-key-3d6a0c4e8f1b"
EDIT = command_config("echo more >> README.md && echo edited")


def _store(app, installation_id: int, **values: str) -> None:
    """As `draftsmith credentials set --installation ID NAME` would."""
    store = CredentialStore(app.engine, load_keyring(app.settings))
    for name, value in values.items():
        store.set(installation_id, name, value)


def _spend(tasks: TaskService, run_id: int, cost_usd: float) -> None:
    """A run that finished today having cost `cost_usd`, recorded as execute_run records agent usage."""
    tasks.start_run(run_id, worker="earlier-worker")
    tasks.finish(run_id, Status.SUCCEEDED, cost_usd=cost_usd)


@pytest.fixture
def limited(fakehub, make_draftsmith):
    """A scene whose app runs with settings overrides: `limited(DRAFTSMITH_...="...")`."""
    def make(**overrides: str) -> Scene:
        server = make_draftsmith(fakehub.env(), **overrides)
        fakehub.webhook_url = server.webhook_url
        return Scene(fakehub, server)

    return make


def test_a_missing_provider_key_fails_at_once_naming_the_key_and_how_to_set_it(scene, fakehub, model_server):
    # Given a repository that picks mini-swe-agent with an OpenAI model, and no key stored
    scene.repo("agent: mini-swe-agent\nmodel: openai/fake-model\n")
    installation_id = fakehub.installation_id(REPO)
    number = fakehub.open_issue(REPO, "Fix the typo", "")

    # When alice assigns the bot
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    # Then the task failed before any workspace was made or any model called
    assert task.status == "failed"
    how = f"draftsmith credentials set --installation {installation_id} OPENAI_API_KEY"
    assert "OPENAI_API_KEY" in task.status_reason and how in task.status_reason
    assert model_server.requests == []
    [run] = scene.runs(task.id)
    assert not any(line.text.startswith("cloning") for line in scene.logs(run.id))

    # And the progress comment and the check run say which key and how to set it
    [progress] = scene.bot_comments(number)
    assert "Failed" in progress.body and how in progress.body
    check = scene.check_run()
    assert (check.status, check.conclusion) == ("completed", "failure")
    assert "OPENAI_API_KEY" in check.output["title"] and how in check.output["text"]
    assert [a["identifier"] for a in check.actions] == ["retry"]
    [pr] = scene.pulls()
    assert pr.pull.draft is True and "stays a draft" in pr.body, "the draft stays, saying why"


def test_keys_reach_only_their_own_installation_and_are_scrubbed_from_logs(scene, fakehub):
    # Given two owners, each with the App installed and its own key under the same name
    scene.repo(command_config('env | sort; printf %s "$OPENAI_API_KEY" | sha256sum; echo x >> README.md'))
    fakehub.create_repo("other", "lib", {"README.md": "# Lib\n"})
    ours, theirs = fakehub.installation_id(REPO), fakehub.installation_id("other/lib")
    assert ours != theirs
    _store(scene.app, ours, OPENAI_API_KEY=OUR_KEY)
    _store(scene.app, theirs, OPENAI_API_KEY=THEIR_KEY, ANTHROPIC_API_KEY=THEIR_KEY + "-anthropic")

    # When alice asks for a task in octo/demo
    number = fakehub.open_issue(REPO, "Show me your environment", "")
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()
    assert task.status == "succeeded", task.status_reason

    # Then the agent saw this installation's key (its hash), never the other's, and the log hides the value
    [run] = scene.runs(task.id)
    log = "\n".join(line.text for line in scene.logs(run.id))
    assert hashlib.sha256(OUR_KEY.encode()).hexdigest() in log
    assert "OPENAI_API_KEY=[redacted]" in log
    assert "ANTHROPIC_API_KEY" not in log
    message = subprocess.run(["git", "--git-dir", fakehub.repo(REPO).git_dir, "log", "-1", "--format=%B",
                              task.head_sha], capture_output=True, text=True, check=True).stdout
    written = "\n".join([log, message, scene.pulls()[0].body, *(c.body for c in fakehub.state.comments.values())])
    assert OUR_KEY not in written and THEIR_KEY not in written


def test_the_daily_cost_cap_stops_new_runs_with_a_reply(limited, fakehub):
    scene = limited(DRAFTSMITH_DAILY_COST_CAP_USD="2.50")
    scene.repo(EDIT)
    installation_id = fakehub.installation_id(REPO)

    # Given runs of this installation that already cost $2.60 today (as the pipeline stores agent usage)
    tasks = TaskService(scene.app.engine)
    for cost in (1.25, 1.35):
        earlier = tasks.create(installation_id=installation_id, repo_full_name=REPO, issue_number=999,
                               requester="alice", trigger="command", instruction="earlier work")
        _spend(tasks, earlier.run.id, cost)
    before = len(scene.tasks())

    # When alice asks for more
    number = fakehub.open_issue(REPO, "Docs", "")
    fakehub.comment(REPO, number, "/agent run add a line")
    scene.wait_settled()

    # Then nothing started, and one reply names the cap and when it resets
    assert len(scene.tasks()) == before
    [reply] = scene.bot_comments(number)
    assert "daily spending cap of $2.50" in reply.body
    assert render.when(next_utc_midnight(datetime.now(UTC))) in reply.body
    assert scene.check_runs() == []


def test_the_daily_cost_cap_does_not_count_other_installations(limited, fakehub):
    scene = limited(DRAFTSMITH_DAILY_COST_CAP_USD="1")
    scene.repo(EDIT)
    fakehub.create_repo("other", "lib", {"README.md": "# Lib\n"})
    tasks = TaskService(scene.app.engine)
    spent = tasks.create(installation_id=fakehub.installation_id("other/lib"), repo_full_name="other/lib",
                         issue_number=1, requester="bob", trigger="command", instruction="expensive")
    _spend(tasks, spent.run.id, 40.0)

    number = fakehub.open_issue(REPO, "Docs", "")
    fakehub.comment(REPO, number, "/agent run add a line")
    mine = [t for t in scene.wait_settled() if t.repo_full_name == REPO]
    assert [t.status for t in mine] == ["succeeded"]


def test_the_daily_task_limit_reply_says_when_it_resets(limited, fakehub):
    scene = limited(DRAFTSMITH_MAX_TASKS_PER_DAY="1")
    scene.repo(EDIT)
    number = fakehub.open_issue(REPO, "Docs", "")
    fakehub.comment(REPO, number, "/agent run first")
    [first] = scene.wait_settled()
    assert first.status == "succeeded"

    fakehub.comment(REPO, number, "/agent run second")
    [only] = scene.wait_settled()
    assert only.id == first.id
    [reply] = [c for c in scene.bot_comments(number) if render.progress_marker(first.id) not in c.body]
    assert "limit of 1 tasks a day" in reply.body
    resets = next_utc_midnight(datetime.now(UTC))
    assert resets - datetime.now(UTC) <= timedelta(days=1)
    assert f"resets at {render.when(resets)}" in reply.body
