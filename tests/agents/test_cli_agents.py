"""`draftsmith agents` on this worker: the real CLIs are missing, a CLI on DRAFTSMITH_AGENT_PATH is found."""

from __future__ import annotations

from typer.testing import CliRunner

from app.cli import cli
from tests.agents.standin import StandIn


def agent_lines(output: str) -> dict[str, str]:
    return {line.split()[0]: line for line in output.splitlines() if line and not line.startswith(" ")}


def test_real_agent_clis_are_reported_missing_with_install_hints(monkeypatch):
    monkeypatch.delenv("DRAFTSMITH_AGENT_PATH", raising=False)
    result = CliRunner().invoke(cli, ["agents"])
    assert result.exit_code == 0
    lines = agent_lines(result.output)
    for name, binary in [("claude-code", "claude"), ("codex", "codex"), ("gemini", "gemini"),
                         ("opencode", "opencode"), ("aider", "aider")]:
        assert "missing" in lines[name] and f"`{binary}` not found" in lines[name]
    assert "npm install -g @anthropic-ai/claude-code" in result.output
    assert "npm install -g @openai/codex" in result.output
    assert "available" in lines["command"]


def test_a_cli_on_the_agent_path_is_available_with_its_version(tmp_path, monkeypatch):
    StandIn(tmp_path, "codex").install(version="codex-cli 0.46.0")
    monkeypatch.setenv("DRAFTSMITH_AGENT_PATH", str(tmp_path))
    result = CliRunner().invoke(cli, ["agents"])
    line = agent_lines(result.output)["codex"]
    assert "available" in line and "0.46.0" in line and str(tmp_path) in line
