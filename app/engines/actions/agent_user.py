"""Who the agent runs as on an Actions runner: an unprivileged user of its own, never the runner's.

Under the runner's own user the agent could read /proc/<pid>/environ of the step (the job's OIDC request
token) and the event file (the run's callback credential), and report a forged result. A second user,
reached through root or the runner's passwordless sudo (GitHub-hosted runners have it), cannot.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Repository variable passed by workflows/draftsmith.yml: unset for the default, a user name, or `shared`.
AGENT_USER_VARIABLE = "DRAFTSMITH_AGENT_USER"
DEFAULT_AGENT_USER = "draftsmith-agent"
SHARED = "shared"


class AgentUserUnavailable(Exception):
    """The runner cannot start the agent as another user; the message says what to do."""


@dataclass(frozen=True)
class AgentUser:
    name: str
    uid: int
    gid: int
    privileged: tuple[str, ...]  # () as root, else sudo

    def command(self, argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
        """`argv` as this user with no supplementary groups and no way back up (no_new_privs).

        sudo may reset PATH and HOME (secure_path, set_home), so `env` sets them again after it; the other
        variables travel through sudo's --preserve-env, out of every process's command line.
        """
        kept = [f"{key}={env[key]}" for key in ("PATH", "HOME") if key in env]
        return [*self.privileged, "setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
                "--no-new-privs", "--", "env", *kept, *argv]

    def give(self, path: Path) -> None:
        self._chown(path, self.uid, self.gid)

    def take_back(self, path: Path) -> None:
        """Once the agent's processes are gone, so no file can change owner under us."""
        self._chown(path, os.getuid(), os.getgid())

    def stop_everything(self) -> None:
        """Kill every process left by the agent (daemons, background jobs): `kill -1` as that user."""
        subprocess.run([*self.privileged, "setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                        "--clear-groups", "--", "kill", "-KILL", "-1"], capture_output=True, check=False)

    def _chown(self, path: Path, uid: int, gid: int) -> None:
        # -R without -L never follows a symlink the agent planted.
        _privileged_run([*self.privileged, "chown", "-R", f"{uid}:{gid}", str(path)])


def resolve(environ: Mapping[str, str]) -> AgentUser | None:
    """The user to run the agent as, created when it is the default and missing; None for `shared`."""
    choice = (environ.get(AGENT_USER_VARIABLE) or "").strip()
    if choice == SHARED:
        return None
    name = choice or DEFAULT_AGENT_USER
    privileged = _privilege()
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if choice:
            raise AgentUserUnavailable(f"{AGENT_USER_VARIABLE} names the user {name}, who has no account on "
                                       f"this runner") from None
        _privileged_run([*privileged, "useradd", "--system", "--user-group", "--no-create-home",
                         "--shell", "/usr/sbin/nologin", name])
        entry = pwd.getpwnam(name)
    if entry.pw_uid in (0, os.getuid()):
        raise AgentUserUnavailable(f"{AGENT_USER_VARIABLE} must name an unprivileged user other than the "
                                   f"runner's; {name} has uid {entry.pw_uid}")
    return AgentUser(name, entry.pw_uid, entry.pw_gid, privileged)


def _privilege() -> tuple[str, ...]:
    if os.geteuid() == 0:
        return ()
    sudo = ("sudo", "-n", "--preserve-env")
    if shutil.which("sudo") and subprocess.run([*sudo, "true"], capture_output=True).returncode == 0:
        return sudo
    raise AgentUserUnavailable(
        "This runner cannot start the agent as a separate user: it is not root and has no passwordless sudo. "
        "Under the runner's own user the agent could read this job's credentials and report a forged result, "
        "so nothing was run. Use a GitHub-hosted runner, give the self-hosted runner's user passwordless sudo, "
        f"or, if you accept that risk, set the repository variable {AGENT_USER_VARIABLE} to `{SHARED}`.")


def _privileged_run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AgentUserUnavailable(f"`{' '.join(argv)}` failed: {(done.stderr or done.stdout).strip()}")


@dataclass(frozen=True)
class AgentPlace:
    """A directory outside the runner's home that the agent owns: its copy of the checkout, its files, its HOME.

    The checkout itself stays the runner's; its `.git` is the one the patch is computed with, so nothing
    the agent writes into a git config or attributes can run a program as the runner.
    """

    root: Path

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @classmethod
    def create(cls, checkout: Path) -> AgentPlace:
        place = cls(Path(tempfile.mkdtemp(prefix="draftsmith-agent-")))
        shutil.copytree(checkout, place.workspace, symlinks=True)
        place.artifacts.mkdir()
        place.home.mkdir()
        return place

    def remove(self, user: AgentUser | None) -> None:
        if user is not None:
            user.stop_everything()
            user.take_back(self.root)
        shutil.rmtree(self.root, ignore_errors=True)
