"""The real mini-swe-agent, driven through our adapter against the scripted model server."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from app.agents.base import AgentRequest
from app.agents.registry import get_agent
from tests.agents._run import run_unsandboxed
from tests.support.fake_llm import bash, submit


@pytest.fixture
def git_repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "README.md").write_text("# demo\n")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com",
                    "commit", "-q", "-m", "init"], check=True)
    return repo


def test_mini_swe_agent_creates_the_scripted_file_and_reports_usage(
    git_repo, tmp_path, fake_llm, mini_swe_agent_bin, monkeypatch
):
    monkeypatch.setenv("DRAFTSMITH_AGENT_PATH", str(mini_swe_agent_bin))
    fake_llm.script([
        bash("printf 'hello from the agent\\n' > hello.txt", thought="I will create the file.",
             prompt_tokens=120, completion_tokens=30),
        bash("cat hello.txt", prompt_tokens=150, completion_tokens=10),
        submit(prompt_tokens=170, completion_tokens=5),
    ])
    agent = get_agent("mini-swe-agent")
    assert agent.availability().available
    request = AgentRequest(
        prompt="Create hello.txt saying hello.",
        model="openai/fake-model",
        plan_mode=False,
        config={},
        credentials={"OPENAI_API_KEY": "sk-fake-test-key-0000", "OPENAI_BASE_URL": fake_llm.base_url,
                     "ANTHROPIC_API_KEY": "sk-ant-not-for-this-agent"},
        workspace=git_repo,
        artifacts_dir=tmp_path / "artifacts",
    )
    invocation = agent.prepare(request)
    assert "ANTHROPIC_API_KEY" not in invocation.env  # only the key this model needs reaches the agent

    started = time.monotonic()
    finished = run_unsandboxed(request, invocation, timeout=120)
    elapsed = time.monotonic() - started

    assert (git_repo / "hello.txt").read_text() == "hello from the agent\n", finished.stderr[-2000:]
    result = agent.parse_result(request, finished.exit_code, finished.stdout, finished.stderr)
    assert result.success, result.summary
    assert (result.usage.input_tokens, result.usage.output_tokens) == fake_llm.usage_totals == (440, 45)
    assert "hello.txt" in (result.transcript or "")
    # The task reached the model, and nothing was committed by the agent.
    first_request = json.dumps(fake_llm.requests[0])
    assert "Create hello.txt saying hello." in first_request
    log = subprocess.run(["git", "-C", str(git_repo), "log", "--oneline"], capture_output=True, text=True).stdout
    assert len(log.splitlines()) == 1
    print(f"mini-swe-agent run took {elapsed:.1f}s")
