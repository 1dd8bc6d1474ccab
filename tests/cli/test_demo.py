"""`draftsmith demo` shows the whole loop with nothing configured, and cleans up after itself."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def test_the_demo_runs_the_whole_loop_and_exits_cleanly_within_a_minute(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "DRAFTSMITH_"))}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env["TMPDIR"] = str(tmp_path)  # where the demo keeps its files, so the test can see they are gone
    started = time.monotonic()
    result = subprocess.run([str(Path(sys.executable).parent / "draftsmith"), "demo"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for step in ("👀", "progress comment", "draft pull request #", "check run in progress", "ready for review"):
        assert step in out, f"missing {step!r} in:\n{out}"
    assert "+This sentence has a typo in it." in out, "the diff is shown"
    assert "/octo/hello/pull/" in out and "/tasks/1?token=" in out
    assert took < 60, f"the demo took {took:.0f} s"
    assert not list(tmp_path.glob("draftsmith-demo-*")), "the demo leaves nothing behind"
