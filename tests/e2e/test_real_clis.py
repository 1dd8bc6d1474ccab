"""Each real agent CLI, at its pinned version, in the bubblewrap sandbox against the scripted model:
assignment to a ready PR holding exactly the scripted change, with usage shown and the key nowhere."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import pytest
from sqlmodel import Session, select

from app.agents.base import AGENT_PATH_ENV
from app.credentials import CredentialStore, load_keyring
from app.engines.sandbox.bubblewrap import find_bwrap
from app.models import Artifact
from tests.e2e.conftest import REPO
from tests.support.model_script import finish, write
from tests.support.model_server import API_KEY

pytestmark = [
    pytest.mark.real_cli,
    pytest.mark.skipif(find_bwrap() is None, reason="bubblewrap (apt: bubblewrap) is not installed"),
]

# A new file: Claude Code and OpenCode refuse to overwrite a file the agent has not read first.
NEW_FILE, TEXT = "CONTRIBUTING.md", "Be kind; run the tests.\n"
ISSUE = ("Add contributing notes", "Please add CONTRIBUTING.md saying: Be kind; run the tests.")
SUMMARY = "Added CONTRIBUTING.md."


@dataclass(frozen=True)
class Cli:
    """How a repository picks the CLI, and which key and base URL the installation stores for it."""

    model: str
    key: str
    base_url_var: str
    openai_style: bool = False  # its base URL ends in /v1
    cost: str | None = None  # the cost line, where the CLI prices the scripted model itself

    def config(self, agent: str) -> str:
        return f"agent: {agent}\nmodel: {self.model}\n"


CLIS = {
    "claude-code": Cli("claude-sonnet-4-5", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", cost="Cost: $0.01"),
    "codex": Cli("gpt-5-codex", "OPENAI_API_KEY", "OPENAI_BASE_URL", openai_style=True),
    "gemini": Cli("gemini-2.5-pro", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL"),
    # OpenCode prices a model its config gives no cost for at zero, and says so.
    "opencode": Cli("openai/fake-model", "OPENAI_API_KEY", "OPENAI_BASE_URL", openai_style=True, cost="Cost: $0.00"),
    "aider": Cli("openai/fake-model", "OPENAI_API_KEY", "OPENAI_BASE_URL", openai_style=True),
    "mini-swe-agent": Cli("openai/fake-model", "OPENAI_API_KEY", "OPENAI_BASE_URL", openai_style=True),
}


def _store(draftsmith, installation_id: int, **values: str) -> None:
    """As `draftsmith credentials set --installation ID NAME` would."""
    store = CredentialStore(draftsmith.engine, load_keyring(draftsmith.settings))
    for name, value in values.items():
        store.set(installation_id, name, value)


def _git(fakehub, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", fakehub.repo(REPO).git_dir, *args],
                          capture_output=True, text=True, check=True).stdout


def _everything_written(scene, fakehub, task) -> str:
    """All text Draftsmith stored or wrote to GitHub for this task, for secret checks."""
    texts = [line.text for run in scene.runs(task.id) for line in scene.logs(run.id)]
    with Session(scene.app.engine) as session:
        texts += [a.content for a in session.exec(select(Artifact)).all()]
    texts += [run.error or "" for run in scene.runs(task.id)]
    texts += [c.body for c in fakehub.state.comments.values()]
    texts += [p.body or "" for p in scene.pulls()]
    texts += [str(check.output) for check in scene.check_runs()]
    return "\n".join(texts)


def given_a_repository_using(scene, fakehub, model_server, real_cli, monkeypatch, agent: str,
                             config: str | None = None) -> Cli:
    """The pinned CLI on the agent path, a repository config, and the installation's key and base URL."""
    cli = CLIS[agent]
    monkeypatch.setenv(AGENT_PATH_ENV, str(real_cli(agent)))
    scene.repo(config or cli.config(agent))
    base_url = model_server.base_url if cli.openai_style else model_server.url
    _store(scene.app, fakehub.installation_id(REPO), **{cli.key: API_KEY, cli.base_url_var: base_url})
    model_server.script([
        write(NEW_FILE, TEXT, input_tokens=1200, output_tokens=40),
        finish(SUMMARY, input_tokens=1300, output_tokens=15),
    ])
    return cli


def then_a_ready_pr_holds_exactly_the_scripted_change(scene, fakehub, model_server, cli: Cli, task) -> None:
    [run] = scene.runs(task.id)
    assert task.status == "succeeded", (task.status_reason, [line.text for line in scene.logs(run.id)][-40:])
    assert _git(fakehub, "show", f"{task.branch}:{NEW_FILE}") == TEXT
    assert _git(fakehub, "diff", "--name-only", f"{task.base_sha}..{task.branch}").split() == [NEW_FILE]
    assert task.head_sha in fakehub.state.verified_commits
    [pr] = scene.pulls()
    assert pr.pull.draft is False and pr.pull.head_ref == task.branch
    assert SUMMARY in pr.body

    # The model traffic went through the run's egress proxy to the stored base URL, with the stored key
    host_port = model_server.url.split("://", 1)[1]
    assert f"network: connected to {host_port}" in [line.text for line in scene.logs(run.id)]
    answered = [r for r in model_server.requests if r.status == 200 and r.shape != "models"]
    assert answered and all(r.status != 401 for r in model_server.requests)
    assert any(ISSUE[1] in r.text for r in answered), "the issue reached the model"

    # Usage was recorded on the run and shown where people look
    assert (run.input_tokens, run.output_tokens) == model_server.usage_totals == (2500, 55)
    usage = "Tokens: 2,500 in, 55 out"
    check = scene.check_run(task)
    assert (check.status, check.conclusion) == ("completed", "success")
    assert usage in pr.body and usage in check.output["summary"]
    if cli.cost:
        assert cli.cost in pr.body and cli.cost in check.output["summary"]
    print(f"{task.agent} run: {run.agent_seconds:.1f} s in the sandbox")

    assert API_KEY not in _everything_written(scene, fakehub, task)


@pytest.mark.parametrize("agent", list(CLIS))
def test_each_real_cli_turns_an_assignment_into_a_ready_pr_with_the_scripted_change(
        scene, fakehub, model_server, real_cli, monkeypatch, agent):
    # Given a repository whose config picks the agent, with its key and the scripted model's URL stored
    cli = given_a_repository_using(scene, fakehub, model_server, real_cli, monkeypatch, agent)
    number = fakehub.open_issue(REPO, *ISSUE)

    # When alice assigns the bot
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled(timeout=180)

    # Then the real CLI made exactly the scripted change, on a ready PR, with its usage shown
    then_a_ready_pr_holds_exactly_the_scripted_change(scene, fakehub, model_server, cli, task)


def test_agent_run_with_agent_codex_runs_codex_where_the_repository_defaults_to_claude_code(
        scene, fakehub, model_server, real_cli, monkeypatch):
    # Given a repository that defaults to Claude Code, with keys stored for both
    cli = given_a_repository_using(scene, fakehub, model_server, real_cli, monkeypatch, "codex",
                                   config="agent: claude-code\n")
    _store(scene.app, fakehub.installation_id(REPO), ANTHROPIC_API_KEY=API_KEY, ANTHROPIC_BASE_URL=model_server.url)
    number = fakehub.open_issue(REPO, *ISSUE)

    # When alice asks for Codex on the issue
    fakehub.comment(REPO, number, "/agent run --agent codex --model gpt-5-codex")
    [task] = scene.wait_settled(timeout=180)

    # Then Codex (and only Codex) talked to the model, and its change is on a ready PR
    assert task.agent == "codex"
    assert {r.shape for r in model_server.requests} == {"responses"}
    then_a_ready_pr_holds_exactly_the_scripted_change(scene, fakehub, model_server, cli, task)
