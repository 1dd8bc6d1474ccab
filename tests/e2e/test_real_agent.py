"""The real mini-swe-agent, in the bubblewrap sandbox, against a scripted model: assignment to a ready PR."""

from __future__ import annotations

import subprocess

import pytest
from sqlmodel import Session, select

from app.agents.base import AGENT_PATH_ENV
from app.credentials import CredentialStore, load_keyring
from app.models import Artifact
from app.engines.sandbox.bubblewrap import find_bwrap
from tests.e2e.conftest import REPO
from tests.support.fake_llm import bash, submit

# Not token-shaped (no sk- prefix), so only scrubbing of the stored value itself can hide it.
API_KEY = "fake-openai-key-7c1e5b9d2f4a6e8c0b3d"

CONFIG = "agent: mini-swe-agent\nmodel: openai/fake-model\n"

pytestmark = pytest.mark.skipif(find_bwrap() is None, reason="bubblewrap (apt: bubblewrap) is not installed")


def _store(draftsmith, installation_id: int, **values: str) -> None:
    """As `draftsmith credentials set --installation ID NAME` would."""
    store = CredentialStore(draftsmith.engine, load_keyring(draftsmith.settings))
    for name, value in values.items():
        store.set(installation_id, name, value)


def _git_show(fakehub, ref: str, path: str) -> str:
    return subprocess.run(["git", "--git-dir", fakehub.repo(REPO).git_dir, "show", f"{ref}:{path}"],
                          capture_output=True, text=True, check=True).stdout


def _everything_written(scene, fakehub, task) -> str:
    """All text Draftsmith stored or wrote to GitHub for this task, for secret checks."""
    texts = [line.text for run in scene.runs(task.id) for line in scene.logs(run.id)]
    with Session(scene.app.engine) as session:
        texts += [a.content for a in session.exec(select(Artifact)).all()]
    texts += [run.error or "" for run in scene.runs(task.id)]
    texts += [c.body for c in fakehub.state.comments.values()]
    texts += [p.body or "" for p in scene.pulls()]
    for check in scene.check_runs():
        texts += [str(check.output)]
    return "\n".join(texts)


def test_mini_swe_agent_fixes_the_issue_in_the_sandbox_and_opens_a_ready_pr(
        scene, fakehub, fake_llm, mini_swe_agent_bin, monkeypatch):
    # Given the real mini CLI on the agent path, a repository that picks it, and the installation's key
    monkeypatch.setenv(AGENT_PATH_ENV, str(mini_swe_agent_bin))
    scene.repo(CONFIG)
    _store(scene.app, fakehub.installation_id(REPO), OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=fake_llm.base_url)
    fake_llm.script([
        bash("sed -i 's/tpyo/typo/' README.md", thought="The README misspells typo.",
             prompt_tokens=1200, completion_tokens=40),
        submit("Fixed the typo in README.md", prompt_tokens=1300, completion_tokens=15),
    ])
    number = fakehub.open_issue(REPO, "Fix the spelling in README", "The README says tpyo where it means typo.")

    # When alice assigns the bot
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled(timeout=120)

    # Then the agent ran in the sandbox and its change landed as a bot commit on a ready PR
    [run] = scene.runs(task.id)
    assert task.status == "succeeded", (task.status_reason, [line.text for line in scene.logs(run.id)][-30:])
    assert _git_show(fakehub, task.branch, "README.md") == "# Demo\n\nA typo here.\n"
    assert task.head_sha in fakehub.state.verified_commits
    [pr] = scene.pulls()
    assert pr.pull.draft is False and pr.pull.head_ref == task.branch
    assert "Fixed the typo in README.md" in pr.body

    # And its model traffic went through the run's egress proxy (the sandbox has no other way out)
    host_port = fake_llm.base_url.split("://", 1)[1].split("/", 1)[0]
    assert f"network: connected to {host_port}" in [line.text for line in scene.logs(run.id)]

    # And the scripted model was asked about this issue, through the stored base URL
    first_prompt = "\n".join(str(m.get("content")) for m in fake_llm.requests[0]["messages"])
    assert "The README says tpyo where it means typo." in first_prompt
    assert fake_llm.requests[0]["model"] == "fake-model"

    # And usage was recorded on the run and shown where people look
    prompt_tokens, completion_tokens = fake_llm.usage_totals
    assert (run.input_tokens, run.output_tokens) == (prompt_tokens, completion_tokens) == (2500, 55)
    assert run.agent_seconds and run.agent_seconds > 0
    assert "Tokens: 2,500 in, 55 out" in pr.body
    check = scene.check_run()
    assert (check.status, check.conclusion) == ("completed", "success")
    assert "Tokens: 2,500 in, 55 out" in check.output["summary"]

    # And the key appears nowhere Draftsmith wrote
    assert API_KEY not in _everything_written(scene, fakehub, task)
