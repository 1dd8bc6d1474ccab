"""Stand-in agent CLIs: an executable on PATH that records how it was started and prints canned output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

_SCRIPT = """#!{python}
import json, os, sys
record = {{"argv": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd(),
          "stdin": sys.stdin.read() if not sys.stdin.isatty() else None}}
if sys.argv[1:] == ["--version"]:
    print({version!r}); sys.exit(0)
with open({record!r}, "a") as f:
    f.write(json.dumps(record) + "\\n")
sys.stdout.write({stdout!r})
sys.stderr.write({stderr!r})
sys.exit({exit_code})
"""


class StandIn:
    def __init__(self, bin_dir: Path, name: str) -> None:
        self.path = bin_dir / name
        self.record_file = bin_dir / f"{name}.calls.jsonl"

    def install(self, stdout: str = "", stderr: str = "", exit_code: int = 0, version: str = "1.2.3") -> StandIn:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(_SCRIPT.format(python=sys.executable, version=version, record=str(self.record_file),
                                            stdout=stdout, stderr=stderr, exit_code=exit_code))
        os.chmod(self.path, 0o755)
        return self

    @property
    def calls(self) -> list[dict]:
        if not self.record_file.exists():
            return []
        return [json.loads(line) for line in self.record_file.read_text().splitlines()]
