"""A run's git workspace: clone and fetch with a short-lived token that is never written anywhere."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from app.logs import scrub

GIT_USER_NAME = "Draftsmith"
GIT_USER_EMAIL = "draftsmith@users.noreply.github.com"
# Applied to every git command we run, so a workspace's own config cannot run code as the worker or
# hand the token elsewhere (the agent can edit .git/config; these `-c` values take precedence).
_HARDENING = [
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "credential.helper=",
    "-c", "safe.directory=*",  # the agent's throwaway uid owns the files after a run
    "-c", "protocol.ext.allow=never",
]
_ASKPASS = """#!/bin/sh
# git asks twice: "Username for ..." then "Password for ...". The token lives only in this process's env.
case "$1" in
  Username*) echo x-access-token ;;
  *) echo "$DRAFTSMITH_GIT_TOKEN" ;;
esac
"""


class GitError(RuntimeError):
    """A git command failed; the message holds its scrubbed stderr."""


def _run_git(args: list[str], *, cwd: Path | None, token: str | None, timeout: float = 600) -> str:
    with tempfile.TemporaryDirectory(prefix="draftsmith-git-") as home:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,  # no user gitconfig or credential store of the worker's account
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "LANG": "C",
        }
        if token:
            askpass = Path(home) / "askpass.sh"
            askpass.write_text(_ASKPASS)
            askpass.chmod(0o700)
            env["GIT_ASKPASS"] = str(askpass)
            env["DRAFTSMITH_GIT_TOKEN"] = token
        proc = subprocess.run(
            ["git", *_HARDENING, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if proc.returncode != 0:
        message = scrub(proc.stderr.strip() or proc.stdout.strip(), [token] if token else [])
        raise GitError(f"git {args[0]} failed: {message}")
    return proc.stdout


def _refuse_credentials_in_url(url: str) -> None:
    if urlsplit(url).password or "@" in (urlsplit(url).netloc or ""):
        raise ValueError("pass the token separately: a URL with credentials would be stored in .git/config")


def clone(clone_url: str, branch: str, token: str | None, dest: Path) -> str:
    """Clone `branch` of `clone_url` into `dest` (which must not exist) and return its head sha.

    The token reaches git only through an askpass helper's environment, never argv, config or logs.
    """
    _refuse_credentials_in_url(clone_url)
    dest = Path(dest)
    _run_git(
        ["clone", "--quiet", "--no-tags", "--single-branch", "--branch", branch, "--", clone_url, str(dest)],
        cwd=None,
        token=token,
    )
    configure_identity(dest)
    return head_sha(dest)


def configure_identity(dest: Path, name: str = GIT_USER_NAME, email: str = GIT_USER_EMAIL) -> None:
    """So the agent can commit and `git diff` in the workspace; our real commits go through the API."""
    for key, value in (("user.name", name), ("user.email", email), ("advice.detachedHead", "false")):
        _run_git(["config", key, value], cwd=dest, token=None)


def head_sha(dest: Path, rev: str = "HEAD") -> str:
    return _run_git(["rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=dest, token=None).strip()


def fetch(dest: Path, branch: str, token: str | None, url: str | None = None) -> str:
    """Fetch `branch` into refs/remotes/origin/<branch> and return its sha.

    Pass `url` once an agent has run in `dest`: it may have pointed `origin` at a server of its own,
    which would then receive the token.
    """
    source = url or "origin"
    if url:
        _refuse_credentials_in_url(url)
    _run_git(
        ["fetch", "--quiet", "--no-tags", source, f"+refs/heads/{branch}:refs/remotes/origin/{branch}"],
        cwd=dest,
        token=token,
    )
    return head_sha(dest, f"refs/remotes/origin/{branch}")


def checkout_branch(dest: Path, branch: str, token: str | None, url: str | None = None) -> str:
    """For a follow-up run on a PR: fetch its branch and check it out locally; returns its head sha."""
    sha = fetch(dest, branch, token, url)
    _run_git(["checkout", "--quiet", "-B", branch, sha], cwd=dest, token=None)
    return sha
