"""Loading `.github/draftsmith.yml` and agent instructions from the fake GitHub, over HTTP."""

from __future__ import annotations

import pytest
from githubkit.exception import RequestFailed

from app.github.client import GitHubApp, TransientRetry
from app.github.repo_config import CONFIG_PATH, DEFAULT_AGENT, RepoConfig, load_repo_config
from app.settings import Settings


def installation_client(fakehub, full_name: str):
    app = GitHubApp(Settings(**fakehub.env()), retry=TransientRetry(max_retries=0, base_delay=0.01))
    return app.installation_client(fakehub.installation_id(full_name))


def contents_requests(fakehub) -> list:
    return [r for r in fakehub.requests() if r.method == "GET" and "/contents/" in r.path]


async def test_a_repository_without_config_gets_defaults(fakehub):
    fakehub.create_repo("octo", "plain", {"README.md": "hi\n"})
    loaded = await load_repo_config(installation_client(fakehub, "octo/plain"), "octo", "plain", "main")
    assert loaded.config == RepoConfig()
    assert loaded.config.agent == DEFAULT_AGENT
    assert loaded.errors == [] and loaded.instructions_text is None
    assert loaded.source == "defaults"


async def test_config_and_instructions_come_from_the_default_branch(fakehub):
    files = {
        CONFIG_PATH: "agent: command\ncommand: 'sh fix.sh {prompt_file}'\ntest: make test\n"
                     "instructions_file: docs/agents.md\n",
        "AGENTS.md": "Use tabs.\n",
        "docs/agents.md": "Never touch vendor/.\n",
    }
    fakehub.create_repo("octo", "demo", files, default_branch="trunk")
    loaded = await load_repo_config(installation_client(fakehub, "octo/demo"), "octo", "demo", "trunk")
    assert loaded.errors == []
    assert (loaded.config.agent, loaded.config.command, loaded.config.test) == (
        "command", "sh fix.sh {prompt_file}", "make test")
    assert loaded.instructions_text == "Use tabs.\n\nNever touch vendor/."
    assert loaded.source == f"octo/demo:{CONFIG_PATH}"
    # Every read of this repository names the default branch, so a PR branch can't change the rules.
    reads = [r for r in contents_requests(fakehub) if r.path.startswith("/repos/octo/demo/")]
    assert reads and all("ref=trunk" in r.query for r in reads)


async def test_an_invalid_file_reports_lines_and_the_rest_applies(fakehub):
    fakehub.create_repo("octo", "typo", {CONFIG_PATH: "agent: codex\ntset: pytest\nmax_runtime_minutes: 0\n"})
    loaded = await load_repo_config(installation_client(fakehub, "octo/typo"), "octo", "typo", "main")
    assert [(e.line, e.path) for e in loaded.errors] == [(2, "octo/typo:" + CONFIG_PATH), (3, "octo/typo:" + CONFIG_PATH)]
    assert loaded.config.agent == "codex"
    assert loaded.config.max_runtime_minutes == 30


async def test_a_missing_instructions_file_is_reported(fakehub):
    fakehub.create_repo("octo", "noinst", {CONFIG_PATH: "instructions_file: docs/missing.md\n"})
    loaded = await load_repo_config(installation_client(fakehub, "octo/noinst"), "octo", "noinst", "main")
    assert len(loaded.errors) == 1 and "docs/missing.md was not found" in loaded.errors[0].message
    assert loaded.instructions_text is None


async def test_the_org_github_repository_supplies_a_shared_file(fakehub):
    fakehub.create_repo("octo", ".github", {CONFIG_PATH: "agent: aider\nallowed_bots: [renovate]\n"})
    fakehub.create_repo("octo", "app", {"README.md": "x\n"})
    loaded = await load_repo_config(installation_client(fakehub, "octo/app"), "octo", "app", "main")
    assert (loaded.config.agent, loaded.config.allowed_bots) == ("aider", ["renovate"])
    assert loaded.source == f"octo/.github:{CONFIG_PATH}"


async def test_extends_lays_the_repository_file_over_the_shared_one(fakehub):
    fakehub.create_repo("octo", ".github", {"draftsmith/base.yml": "agent: aider\ntest: make test\n"})
    fakehub.create_repo("octo", "svc", {CONFIG_PATH: "_extends: .github:draftsmith/base.yml\ntest: pytest\n"})
    loaded = await load_repo_config(installation_client(fakehub, "octo/svc"), "octo", "svc", "main")
    assert loaded.errors == []
    assert (loaded.config.agent, loaded.config.test) == ("aider", "pytest")


async def test_extends_pointing_nowhere_is_reported_and_the_file_still_applies(fakehub):
    fakehub.create_repo("octo", "lonely", {CONFIG_PATH: "_extends: octo/nothing-here\ntest: pytest\n"})
    loaded = await load_repo_config(installation_client(fakehub, "octo/lonely"), "octo", "lonely", "main")
    assert loaded.config.test == "pytest"
    assert len(loaded.errors) == 1 and loaded.errors[0].line == 1 and "not found" in loaded.errors[0].message


async def test_server_errors_are_raised_not_mistaken_for_a_missing_file(fakehub):
    fakehub.create_repo("octo", "flaky", {CONFIG_PATH: "agent: codex\n"})
    fakehub.fault("/repos/octo/flaky/contents/*", status=500, count=5)
    with pytest.raises(RequestFailed):
        await load_repo_config(installation_client(fakehub, "octo/flaky"), "octo", "flaky", "main")
