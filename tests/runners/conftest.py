"""Fixtures for runner tests: every sandbox backend, and a fake `docker` CLI that runs containers locally."""

from __future__ import annotations

import json
import stat
import sys
import textwrap
import threading
from pathlib import Path
from typing import NamedTuple

import pytest

from app.engines.sandbox import SandboxResult, SandboxSpec
from app.engines.sandbox.bubblewrap import BubblewrapSandbox, find_bwrap
from app.engines.sandbox.docker import DockerSandbox
from app.engines.sandbox.local import UnsafeLocalSandbox

# Stands in for the Docker engine, which this machine lacks: records argv, then runs the container's
# command as a local process in the bound workspace with only the `-e` environment.
FAKE_DOCKER = textwrap.dedent(
    """
    import json, os, sys
    args = sys.argv[1:]
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "argv.jsonl"), "a") as log:
        log.write(json.dumps(args) + "\\n")
    if args[0] != "run":
        sys.exit(0)
    takes_value = {"--name", "--network", "--memory", "--memory-swap", "--pids-limit", "--ulimit",
                   "--cap-drop", "--security-opt", "--user", "--tmpfs", "-v", "-w", "-e"}
    i, env, mounts, workdir = 1, {}, {}, "/"
    while args[i].startswith("-"):
        flag = args[i]
        if flag in takes_value:
            value = args[i + 1]
            if flag == "-e":
                key, eq, val = value.partition("=")
                env[key] = val if eq else os.environ.get(key, "")
            elif flag == "-v":
                src, dst = value.split(":")[:2]
                mounts[dst] = src
            elif flag == "-w":
                workdir = value
            i += 2
        else:
            i += 1
    command = args[i + 1:]
    os.chdir(mounts.get(workdir, workdir))
    os.execvpe(command[0], command, env)
    """
)


@pytest.fixture
def fake_docker(tmp_path) -> tuple[DockerSandbox, Path]:
    """A DockerSandbox whose `docker` is the fake; returns it and the file its argv are logged to."""
    bin_dir = tmp_path / "fake-docker-bin"
    bin_dir.mkdir()
    script = bin_dir / "docker"
    script.write_text(f"#!{sys.executable}\n" + FAKE_DOCKER)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    log = bin_dir / "argv.jsonl"
    log.touch()
    return DockerSandbox(image="draftsmith/test-image", docker=str(script)), log


def docker_calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _bubblewrap() -> BubblewrapSandbox:
    binary = find_bwrap()
    assert binary, "bubblewrap is required for these tests (.ci/run installs it)"
    return BubblewrapSandbox(binary)


@pytest.fixture
def bwrap() -> BubblewrapSandbox:
    return _bubblewrap()


@pytest.fixture(params=["bubblewrap", "unsafe-local", "docker"])
def sandbox(request):
    """Each backend in turn, for behaviour every backend must share."""
    if request.param == "bubblewrap":
        return _bubblewrap()
    if request.param == "unsafe-local":
        return UnsafeLocalSandbox()
    return request.getfixturevalue("fake_docker")[0]


@pytest.fixture
def workspace(tmp_path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


class Ran(NamedTuple):
    result: SandboxResult
    lines: list[tuple[str, str]]

    @property
    def stdout(self) -> list[str]:
        return [line for stream, line in self.lines if stream == "stdout"]

    @property
    def stderr(self) -> list[str]:
        return [line for stream, line in self.lines if stream == "stderr"]


def run_script(sandbox, workspace: Path, script: str, **fields) -> Ran:
    """Run `sh -c script` to completion; `fields` go to the SandboxSpec."""
    lines: list[tuple[str, str]] = []
    spec = SandboxSpec(argv=["sh", "-c", script], workspace=workspace, **fields)
    result = sandbox.run(spec, on_output=lambda stream, line: lines.append((stream, line)), cancel=threading.Event())
    return Ran(result, lines)
