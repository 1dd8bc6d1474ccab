"""`draftsmith agents install` for real: mini-swe-agent from PyPI into the agents dir, then a worker runs it."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from app.agents.versions import PINS
from app.cli import cli
from app.engines.sandbox.bubblewrap import find_bwrap
from tests.e2e.conftest import REPO, store_credentials
from tests.support.model_script import finish, run
from tests.support.model_server import API_KEY as MODEL_KEY

PINNED = PINS["mini-swe-agent"][2]


def _agents(agents_dir, *args: str):
    return CliRunner().invoke(cli, ["agents", *args], env={"DRAFTSMITH_AGENTS_DIR": str(agents_dir)})


@pytest.fixture(scope="module")
def agents_dir(tmp_path_factory):
    """An agents dir into which `draftsmith agents install mini-swe-agent` ran (uv's cache keeps it ~3 s)."""
    root = tmp_path_factory.mktemp("install")
    os.chmod(root, 0o755)  # the sandbox's throwaway uid must reach the CLI
    result = _agents(root / "agents", "install", "mini-swe-agent")
    assert result.exit_code == 0, result.output
    return root / "agents", result.output


def test_install_shows_its_progress_and_agents_lists_the_version_beside_the_pin(agents_dir):
    root, output = agents_dir
    # The console followed the install: what, where, the installer's own lines, and the result
    assert f"installing mini-swe-agent: pypi package mini-swe-agent {PINNED} into {root / 'mini-swe-agent'}" in output
    assert f"+ mini-swe-agent=={PINNED}" in output
    assert f"installed mini-swe-agent {PINNED} in" in output

    listing = _agents(root)
    [line] = [line for line in listing.output.splitlines() if line.startswith("mini-swe-agent ")]
    assert line.split()[:4] == ["mini-swe-agent", "available", PINNED, PINNED]
    assert str(root / "mini-swe-agent" / "bin" / "mini") in line

    # Installing the same version again does nothing
    again = _agents(root, "install", "mini-swe-agent")
    assert again.exit_code == 0 and f"mini-swe-agent {PINNED} is already installed" in again.output


def test_a_failed_install_of_another_version_keeps_the_working_one(agents_dir):
    root, _ = agents_dir
    result = _agents(root, "install", "mini-swe-agent", "--version", "0.0.0.999")
    assert result.exit_code == 1
    assert "draftsmith agents install:" in result.output and "0.0.0.999" in result.output
    [line] = [line for line in _agents(root).output.splitlines() if line.startswith("mini-swe-agent ")]
    assert line.split()[:3] == ["mini-swe-agent", "available", PINNED]


def test_install_refuses_an_agent_it_does_not_know_naming_the_known_ones(tmp_path):
    result = _agents(tmp_path, "install", "nonexistent")
    assert result.exit_code == 2
    assert "unknown agent 'nonexistent'; choose one of: claude-code, codex" in result.output
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.skipif(find_bwrap() is None, reason="bubblewrap (apt: bubblewrap) is not installed")
def test_a_worker_runs_the_agent_installed_in_its_agents_dir(agents_dir, make_scene, fakehub, model_server,
                                                             monkeypatch):
    # Given an app whose agents dir holds the install, and nothing on DRAFTSMITH_AGENT_PATH or PATH
    root, _ = agents_dir
    monkeypatch.delenv("DRAFTSMITH_AGENT_PATH", raising=False)
    scene = make_scene(DRAFTSMITH_AGENTS_DIR=str(root))
    scene.repo("agent: mini-swe-agent\nmodel: openai/fake-model\n")
    store_credentials(scene.app, fakehub.installation_id(REPO), OPENAI_API_KEY=MODEL_KEY,
                      OPENAI_BASE_URL=model_server.base_url)
    model_server.script([run("sed -i 's/tpyo/typo/' README.md"), finish("Fixed the typo")])
    number = fakehub.open_issue(REPO, "Fix the spelling in README", "tpyo should be typo")

    # When alice assigns the bot
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled(timeout=120)

    # Then the installed CLI ran in the sandbox and its change is on the PR's branch
    assert task.status == "succeeded", task.status_reason
    readme = subprocess.run(["git", "--git-dir", fakehub.repo(REPO).git_dir, "show", f"{task.branch}:README.md"],
                            capture_output=True, text=True, check=True).stdout
    assert readme == "# Demo\n\nA typo here.\n"


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm (Node.js) is not installed")
def test_an_npm_agent_installs_under_a_prefix_of_its_own_and_is_listed_at_its_pin(tmp_path):
    # Gemini CLI is the smallest of the npm agents (about 100 MB, one bundled package).
    os.chmod(tmp_path, 0o755)
    root = tmp_path / "agents"
    pinned = PINS["gemini"][2]
    result = _agents(root, "install", "gemini")
    assert result.exit_code == 0, result.output
    assert f"installing gemini: npm package @google/gemini-cli {pinned}" in result.output
    assert "added" in result.output  # npm's own summary line

    [line] = [line for line in _agents(root).output.splitlines() if line.startswith("gemini ")]
    assert line.split()[:4] == ["gemini", "available", pinned, pinned]
