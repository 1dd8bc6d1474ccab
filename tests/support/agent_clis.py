"""Real agent CLIs for tests, at the versions app/agents/versions.py pins, each installed once into
.cache/agents/NAME (an npm prefix or a venv of its own, so no CLI's pins mix with ours)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.agents.versions import COMPANIONS, PINS

CACHE_DIR = Path(os.environ.get("DRAFTSMITH_TEST_CACHE", Path(__file__).resolve().parents[2] / ".cache")) / "agents"
# npm and uv retry a dead registry for minutes; a CI run should fail instead.
INSTALL_TIMEOUT_S = 600


def install(name: str) -> Path:
    """bin/ of the pinned CLI `name`, installed on first use under a file lock (the first test pays)."""
    registry, package, version = PINS[name]
    prefix = CACHE_DIR / name
    marker = prefix / ".installed"
    wanted = f"{package}=={version}"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text().split("\n")[0] == wanted:
            return prefix / "bin"
        shutil.rmtree(prefix, ignore_errors=True)
        started = time.monotonic()
        if registry == "npm":
            _run(["npm", "install", "-g", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error",
                  f"{package}@{version}"])
        else:
            uv = shutil.which("uv")
            if uv is None:
                raise RuntimeError("uv is needed to install agent CLIs for tests")
            python = f"{sys.version_info.major}.{sys.version_info.minor}"
            _run([uv, "venv", "--python", python, str(prefix)])
            _run([uv, "pip", "install", "--python", str(prefix / "bin" / "python"), wanted, *COMPANIONS.get(name, [])])
        marker.write_text(f"{wanted}\n{time.monotonic() - started:.1f}\n")
        return prefix / "bin"


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}")


def install_seconds(name: str) -> float | None:
    """How long the cached install of `name` took, as recorded when it was made."""
    marker = CACHE_DIR / name / ".installed"
    lines = marker.read_text().splitlines() if marker.exists() else []
    return float(lines[1]) if len(lines) > 1 else None


@pytest.fixture(scope="session")
def real_cli():
    """`real_cli("codex")`: bin/ holding that pinned CLI, installed once per cache."""
    return install


if __name__ == "__main__":  # .ci/run installs every pinned CLI up front, one at a time
    for agent in PINS:
        began = time.monotonic()
        where = install(agent)
        print(f"{agent}: {PINS[agent][1]} {PINS[agent][2]} in {where} ({time.monotonic() - began:.1f} s)")
