"""`draftsmith agents install`: each agent CLI in a directory of its own under the agents dir, pinned."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.agents.base import INSTALLED_MARKER, tail
from app.agents.versions import COMPANIONS, PINS

Echo = Callable[[str], None]


class InstallError(RuntimeError):
    """The CLI could not be installed; the message says why (and the tail of the installer's output)."""


@dataclass(frozen=True)
class Installed:
    name: str
    registry: str
    package: str
    version: str
    directory: Path
    seconds: float


def install_command(name: str) -> str:
    return f"draftsmith agents install {name}"


def installable() -> list[str]:
    return list(PINS)


def installed(root: Path, name: str) -> Installed | None:
    """What `install` left in root/name, or None (also for an install that did not finish)."""
    marker = root / name / INSTALLED_MARKER
    try:
        data = json.loads(marker.read_text())
        return Installed(name, data["registry"], data["package"], data["version"], root / name,
                         float(data.get("seconds") or 0))
    except (OSError, ValueError, KeyError):
        return None


def install(root: Path, name: str, binary: str, version: str | None = None, echo: Echo = print) -> Installed:
    """Install agent `name` (pinned, or `version`) into root/name, showing the installer's output on `echo`.

    A previous install of it stays in use until the new one has finished, and comes back if it fails.
    """
    if name not in PINS:
        raise InstallError(f"there is no CLI to install for {name!r}; installable agents: {', '.join(PINS)}")
    registry, package, pinned = PINS[name]
    version = version or pinned
    root.mkdir(parents=True, exist_ok=True)
    target = root / name
    with open(root / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two installs of one agent at once would mix their files
        current = installed(root, name)
        if current is not None and current.version == version and (target / "bin" / binary).exists():
            echo(f"{name} {version} is already installed in {target}")
            return current
        previous = root / f".{name}.previous"
        shutil.rmtree(previous, ignore_errors=True)
        if target.exists():
            target.rename(previous)
        started = time.monotonic()
        echo(f"installing {name}: {registry} package {package} {version} into {target}")
        try:
            if registry == "pypi":
                _install_pypi(target, [f"{package}=={version}", *COMPANIONS.get(name, [])], echo)
            else:
                _install_npm(target, f"{package}@{version}", echo)
            if not (target / "bin" / binary).exists():
                raise InstallError(f"{package} {version} installed no `{binary}` command in {target / 'bin'}")
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            if previous.exists():
                previous.rename(target)
            raise
        shutil.rmtree(previous, ignore_errors=True)
        seconds = time.monotonic() - started
        done = Installed(name, registry, package, version, target, seconds)
        (target / INSTALLED_MARKER).write_text(json.dumps(
            {"registry": registry, "package": package, "version": version, "seconds": round(seconds, 1)}) + "\n")
        echo(f"installed {name} {version} in {seconds:.0f} s: {target / 'bin' / binary}")
        return done


def _install_pypi(target: Path, requirements: list[str], echo: Echo) -> None:
    # A venv of its own: agent CLIs pin litellm, openai, pydantic... at versions that must not meet ours.
    uv = shutil.which("uv")
    python = target / "bin" / "python"
    if uv:
        _run([uv, "venv", "--quiet", "--python", sys.executable, str(target)], echo)
        _run([uv, "pip", "install", "--python", str(python), *requirements], echo)
    else:
        _run([sys.executable, "-m", "venv", str(target)], echo)
        _run([str(python), "-m", "pip", "install", "--progress-bar", "off", *requirements], echo)


def _install_npm(target: Path, spec: str, echo: Echo) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise InstallError(f"{spec} is an npm package and `npm` is not on PATH: install Node.js 20+ first")
    # --global under a prefix puts the command in <prefix>/bin and the package, with its own dependencies
    # nested inside it, in <prefix>/lib/node_modules: one self-contained tree the sandbox can bind.
    _run([npm, "install", "--global", "--prefix", str(target), "--no-fund", "--no-audit", spec], echo)


def _run(argv: list[str], echo: Echo) -> None:
    echo(f"$ {' '.join(argv)}")
    env = {**os.environ, "NO_COLOR": "1"}
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          text=True, env=env) as process:
        lines: list[str] = []
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip())
            echo(f"  {line.rstrip()}")
        code = process.wait()
    if code != 0:
        raise InstallError(f"`{' '.join(argv[:3])} ...` exited {code}: {tail(chr(10).join(lines), 1500)}")
