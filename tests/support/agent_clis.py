"""Real agent CLIs for tests, each installed once into its own cached venv so its pins never mix with ours."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

CACHE_DIR = Path(os.environ.get("DRAFTSMITH_TEST_CACHE", Path(__file__).resolve().parents[2] / ".cache")) / "agents"

# mini-swe-agent's litellm imports `mcp` when tools are passed but does not depend on it; without it every
# model call fails and mini retries with growing backoff forever (shared/notes/test-harness.md §7).
MINI_SWE_AGENT_PACKAGES = ["mini-swe-agent>=2.4,<3", "mcp"]


def _install_venv(name: str, packages: list[str], executable: str) -> Path:
    """Create CACHE_DIR/name with `packages` once (under a file lock) and return its bin/ directory."""
    venv = CACHE_DIR / name
    bin_dir = venv / "bin"
    marker = venv / ".installed"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and (bin_dir / executable).exists():
            return bin_dir
        shutil.rmtree(venv, ignore_errors=True)
        uv = shutil.which("uv")
        if uv is None:
            raise RuntimeError("uv is needed to install agent CLIs for tests")
        started = time.monotonic()
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        subprocess.run([uv, "venv", "--python", python, str(venv)], check=True, capture_output=True)
        subprocess.run(
            [uv, "pip", "install", "--python", str(bin_dir / "python"), *packages],
            check=True,
            capture_output=True,
        )
        marker.write_text(f"{time.monotonic() - started:.1f}\n")
        return bin_dir


def mini_swe_agent_bin() -> Path:
    """bin/ of a venv holding mini-swe-agent (its `mini` command), installed on first use."""
    return _install_venv("mini-swe-agent", MINI_SWE_AGENT_PACKAGES, "mini")


def install_seconds(name: str) -> float | None:
    """How long the cached install of `name` took, as recorded when it was made."""
    marker = CACHE_DIR / name / ".installed"
    return float(marker.read_text()) if marker.exists() else None
