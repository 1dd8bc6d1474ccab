"""The audit log records what people did, from GitHub and from the server's shell; `draftsmith audit` prints it."""

from __future__ import annotations

from typer.testing import CliRunner

from app.cli import cli
from tests.e2e.conftest import REPO, command_config

SECRET = "sk-test-" + "S" * 30


def test_who_triggered_cancelled_and_retried_and_who_set_a_key_is_on_record(scene, fakehub, monkeypatch):
    scene.repo(command_config('echo agent-started; sleep 31.4159', on_busy="reply", max_runtime_minutes=1)
               + "unknown_key: 1\n")
    number = fakehub.open_issue(REPO, "Fix typo in README")
    fakehub.assign(REPO, number, scene.bot)
    scene.wait_for(lambda: any(t.status == "running" for t in scene.tasks()), 30, "the run to start")
    fakehub.comment(REPO, number, "/agent cancel")
    scene.wait_settled(timeout=30)
    fakehub.comment(REPO, number, "/agent retry", as_user="alice")
    scene.wait_for(lambda: any(t.status == "running" for t in scene.tasks()), 30, "the retry to start")
    [task] = scene.tasks()
    fakehub.request_check_run_action(task.check_run_id, "cancel")
    scene.wait_settled(timeout=30)

    # An operator stores a key from the server's shell
    monkeypatch.setenv("DATABASE_URL", scene.app.settings.effective_database_url)
    monkeypatch.setenv("DRAFTSMITH_DATA_DIR", str(scene.app.settings.data_dir))
    runner = CliRunner()
    stored = runner.invoke(cli, ["credentials", "set", "ANTHROPIC_API_KEY", "--installation",
                                 str(task.installation_id), "--repo", REPO], input=SECRET)
    assert stored.exit_code == 0, stored.output

    printed = runner.invoke(cli, ["audit", "--repo", REPO.upper(), "--since", "1h"])
    assert printed.exit_code == 0, printed.output
    lines = printed.output.splitlines()
    actions = [next(word for word in line.split("  ") if "." in word and word.islower()) for line in lines]
    assert actions == ["credential.set", "task.cancelled", "task.retried", "task.cancelled", "task.triggered",
                       "config.error"], printed.output
    assert "alice" in lines[-2] and "issues assigned on #1" in lines[-2]
    assert "issue_comment created on #1" in lines[-3] and "cancelled by @alice" in lines[-3]
    assert "check_run requested_action" in lines[1]
    assert lines[0].split("  ")[1].startswith("cli:") and "ANTHROPIC_API_KEY" in lines[0]
    assert "unknown key `unknown_key`" in lines[-1]
    assert SECRET not in printed.output

    assert runner.invoke(cli, ["audit", "--repo", "octo/other"]).output.startswith("Nothing in the audit log")
    assert runner.invoke(cli, ["audit", "--since", "yesterday-ish"]).exit_code != 0
