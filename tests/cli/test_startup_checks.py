"""At start-up the app says when agents cannot run here: a sandbox that cannot work, a default agent not installed."""

from __future__ import annotations

import os

import httpx
import pytest

from app.engines.sandbox.backends import DOCKER_FLAGS, sandbox_problem
from app.engines.sandbox.bubblewrap import find_bwrap
from app.settings import Settings

# What bwrap prints where Docker's default seccomp profile refuses it a user namespace.
REFUSED = "bwrap: No permissions to creating new namespace, likely because the kernel does not allow non-privileged user namespaces."


def test_serve_says_the_docker_sandbox_cannot_work_and_how_to_install_the_default_agent(start_serve):
    # Given a serve told to run agents in Docker, with no Docker daemon to reach, and no agent installed
    serve = start_serve("", DRAFTSMITH_SANDBOX="docker", DOCKER_HOST="unix:///nonexistent/docker.sock")

    # Then it still serves, and its console says both problems and what to do about each
    assert httpx.get(f"{serve.url}/healthz").status_code == 200
    output = serve.wait_for_output("draftsmith agents install mini-swe-agent")
    assert "agents cannot run: DRAFTSMITH_SANDBOX=docker: the Docker daemon cannot be reached" in output
    assert "the default agent, mini-swe-agent, is not installed" in output


@pytest.fixture
def refusing_bwrap(tmp_path, monkeypatch):
    """A `bwrap` first on PATH that fails as it does under Docker's default seccomp profile."""
    fake = tmp_path / "bwrap"
    fake.write_text(f"#!/bin/sh\necho '{REFUSED}' >&2\nexit 1\n")
    os.chmod(fake, 0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    return fake


def test_a_bubblewrap_refused_its_namespaces_is_reported_with_the_docker_flags(refusing_bwrap):
    problem = sandbox_problem(Settings(sandbox="local"))
    assert problem is not None
    assert REFUSED in problem and "every agent run would fail" in problem
    assert DOCKER_FLAGS in problem and "kernel.unprivileged_userns_clone" in problem


@pytest.mark.skipif(find_bwrap() is None, reason="bubblewrap (apt: bubblewrap) is not installed")
def test_a_working_bubblewrap_passes_the_probe():
    assert sandbox_problem(Settings(sandbox="local")) is None
