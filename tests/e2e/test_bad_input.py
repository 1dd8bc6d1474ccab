"""Bad input as a user meets it: an agent nobody has, a CLI not installed, a CLI whose output makes no sense."""

from __future__ import annotations

import os

from app.agents.registry import names
from tests.e2e.conftest import REPO, command_config, store_credentials


def _names_every_known_agent(body: str) -> bool:
    return all(f"`{name}`" in body for name in names())


def test_an_unknown_agent_in_the_config_gets_a_reply_and_starts_nothing(scene, fakehub):
    # Given a repository whose config names an agent Draftsmith does not have
    scene.repo("agent: nonexistent\n")
    number = fakehub.open_issue(REPO, "Fix the typo", "")

    # When alice assigns the bot
    fakehub.assign(REPO, number, scene.bot)
    assert scene.wait_settled() == []

    # Then one reply names the bad agent, where it came from and every agent that exists
    [reply] = scene.bot_comments(number)
    assert "no agent called `nonexistent`" in reply.body and "`agent:`" in reply.body
    assert _names_every_known_agent(reply.body)
    # And nothing failed: no task, no check run, no draft PR
    assert scene.check_runs() == [] and scene.pulls() == []


def test_agent_run_with_an_unknown_agent_gets_a_reply_and_starts_nothing(scene, fakehub):
    scene.repo(None)
    number = fakehub.open_issue(REPO, "Fix the typo", "")

    fakehub.comment(REPO, number, "/agent run --agent nonexistent fix it")
    assert scene.wait_settled() == []

    [reply] = scene.bot_comments(number)
    assert "no agent called `nonexistent`" in reply.body and "`--agent`" in reply.body
    assert _names_every_known_agent(reply.body)
    assert scene.check_runs() == [] and scene.pulls() == []


def test_an_agent_whose_cli_is_missing_fails_at_once_with_the_install_command(scene, fakehub, model_server,
                                                                             monkeypatch, tmp_path):
    # Given a repository that picks Codex, its key stored, and no `codex` anywhere on this worker
    monkeypatch.setenv("DRAFTSMITH_AGENT_PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    scene.repo("agent: codex\nmodel: gpt-5\n")
    store_credentials(scene.app, fakehub.installation_id(REPO), OPENAI_API_KEY="sk-test-not-used",
                      OPENAI_BASE_URL=model_server.base_url)
    number = fakehub.open_issue(REPO, "Fix the typo", "")

    # When alice assigns the bot
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    # Then the run failed before cloning, and says exactly which command installs the CLI
    assert task.status == "failed"
    how = "draftsmith agents install codex"
    assert how in task.status_reason and "`codex`" in task.status_reason
    [run] = scene.runs(task.id)
    assert not any(line.text.startswith("cloning") for line in scene.logs(run.id))
    assert model_server.requests == [], "no model was called"
    [progress] = scene.bot_comments(number)
    assert "Failed" in progress.body and how in progress.body
    check = scene.check_run()
    assert (check.status, check.conclusion) == ("completed", "failure") and how in check.output["text"]


def test_a_cli_that_prints_nonsense_fails_the_run_with_the_tail_of_its_output(scene, fakehub, monkeypatch,
                                                                             tmp_path):
    # Given a `claude` that exits 0 but prints no result Draftsmith can read
    os.chmod(tmp_path, 0o755)  # the sandbox's throwaway uid must reach the CLI, as it must any real install
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    claude = bin_dir / "claude"
    claude.write_text("#!/bin/sh\necho 'Welcome to the new interactive mode!'\n"
                      "echo 'panic: config version 7 is not supported' >&2\nexit 0\n")
    os.chmod(claude, 0o755)
    monkeypatch.setenv("DRAFTSMITH_AGENT_PATH", str(bin_dir))
    scene.repo("agent: claude-code\n")
    store_credentials(scene.app, fakehub.installation_id(REPO), ANTHROPIC_API_KEY="sk-ant-test-not-used")
    number = fakehub.open_issue(REPO, "Fix the typo", "")

    # When alice assigns the bot
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    # Then the run failed, and the reason shows what the CLI said last
    assert task.status == "failed"
    assert "without a JSON result" in task.status_reason
    assert "config version 7 is not supported" in task.status_reason
    check = scene.check_run()
    assert check.conclusion == "failure" and "config version 7 is not supported" in check.output["text"]


def test_retry_with_an_unknown_agent_gets_a_reply_and_runs_nothing_again(scene, fakehub):
    # Given a task that has finished
    scene.repo(command_config("echo more >> README.md && echo edited"))
    number = fakehub.open_issue(REPO, "Add a line", "")
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()
    assert task.status == "succeeded"

    # When alice retries it with an agent that does not exist
    fakehub.comment(REPO, number, "/agent retry --agent nonexistent")
    [task] = scene.wait_settled()

    # Then she is told the known agents, and the task keeps its one run and its agent
    reply = scene.bot_comments(number)[-1]
    assert "no agent called `nonexistent`" in reply.body and _names_every_known_agent(reply.body)
    assert len(scene.runs(task.id)) == 1 and task.agent == "command"
