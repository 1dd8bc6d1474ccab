"""Benchmark the real agent CLIs: install time and size, and one run's wall time against the scripted model.

Run from the repository root:  uv run python bench/agents.py [--runs 3] [NAME ...]
Each CLI is the version app/agents/versions.py pins, installed once into .cache/agents (the install time
is the one recorded then). A run is the adapter's own invocation, unsandboxed, in a fresh git checkout
with a fresh HOME and stdin closed, against tests/support's scripted model ("write hello.txt, then
finish"), with a hard timeout. Loopback only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.agents.base import AGENT_PATH_ENV, AgentRequest  # noqa: E402
from app.agents.registry import get_agent  # noqa: E402
from app.agents.versions import PINS  # noqa: E402
from tests.agents._run import run_unsandboxed  # noqa: E402
from tests.support.agent_clis import CACHE_DIR, install, install_seconds  # noqa: E402
from tests.support.model_script import finish, write  # noqa: E402
from tests.support.model_server import API_KEY, ModelServer  # noqa: E402

# The model and the key/base URL each CLI is driven with (as tests/e2e/test_real_clis.py does).
DRIVES = {
    "claude-code": ("claude-sonnet-4-5", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", ""),
    "codex": ("gpt-5-codex", "OPENAI_API_KEY", "OPENAI_BASE_URL", "/v1"),
    "gemini": ("gemini-2.5-pro", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", ""),
    "opencode": ("openai/fake-model", "OPENAI_API_KEY", "OPENAI_BASE_URL", "/v1"),
    "aider": ("openai/fake-model", "OPENAI_API_KEY", "OPENAI_BASE_URL", "/v1"),
    "mini-swe-agent": ("openai/fake-model", "OPENAI_API_KEY", "OPENAI_BASE_URL", "/v1"),
}


def one_run(name: str, server: ModelServer, timeout: float) -> tuple[float, bool]:
    model, key, url_var, suffix = DRIVES[name]
    server.script([write("hello.txt", "hello\n"), finish("Created hello.txt.")])
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp) / "repo"
        subprocess.run(["git", "init", "-q", str(workspace)], check=True)
        server.model.workspace = str(workspace)
        request = AgentRequest(prompt="Create hello.txt saying hello.", model=model, plan_mode=False, config={},
                               credentials={key: API_KEY, url_var: server.url + suffix}, workspace=workspace,
                               artifacts_dir=Path(tmp) / "artifacts")
        agent = get_agent(name)
        started = time.monotonic()
        try:
            finished = run_unsandboxed(request, agent.prepare(request), timeout=timeout)
        except subprocess.TimeoutExpired:
            return time.monotonic() - started, False
        seconds = time.monotonic() - started
        ok = agent.parse_result(request, finished.exit_code, finished.stdout, finished.stderr).success
        return seconds, ok and (workspace / "hello.txt").exists()


def size_mb(path: Path) -> float:
    """Bytes on disk, each hard-linked file once (npm links a CLI's native binary into two places)."""
    sizes = {(st.st_dev, st.st_ino): st.st_size
             for f in path.rglob("*") if f.is_file() and not f.is_symlink() for st in [f.stat()]}
    return sum(sizes.values()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(PINS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()

    server = ModelServer().start()
    print(f"{'agent':16} {'version':10} {'install s':>9} {'size MB':>8} {'run s (median)':>15}  ok")
    try:
        for name in args.names:
            os.environ[AGENT_PATH_ENV] = str(install(name))
            runs = [one_run(name, server, args.timeout) for _ in range(args.runs)]
            median = statistics.median(s for s, _ in runs)
            ok = sum(1 for _, good in runs if good)
            installed = install_seconds(name)
            print(f"{name:16} {PINS[name][2]:10} {installed or 0:9.1f} {size_mb(CACHE_DIR / name):8.0f} "
                  f"{median:15.1f}  {ok}/{len(runs)}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
