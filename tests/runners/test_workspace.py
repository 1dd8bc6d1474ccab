"""Cloning with an installation token leaves the token nowhere; fetch and follow-up checkouts work."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from app.runners.workspace import GitError, checkout_branch, clone, fetch, head_sha


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def origin(tmp_path) -> Path:
    """A bare repository with `main` (two commits) and a `feature` branch, reachable over file://."""
    work = tmp_path / "seed"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    git(work, "config", "user.name", "Seed")
    git(work, "config", "user.email", "seed@example.com")
    (work / "README.md").write_text("hello\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "first")
    (work / "app.py").write_text("print('hi')\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "second")
    git(work, "checkout", "-qb", "feature")
    (work / "feature.txt").write_text("feature\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "feature work")
    git(work, "checkout", "-q", "main")
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    return bare


def test_clone_returns_the_branch_head_and_sets_an_identity(origin, tmp_path):
    dest = tmp_path / "ws"

    sha = clone(f"file://{origin}", "main", None, dest)

    assert sha == git(origin, "rev-parse", "main")
    assert (dest / "app.py").read_text() == "print('hi')\n"
    assert git(dest, "config", "user.name") == "Draftsmith"
    # The agent can commit in its workspace without configuring anything.
    (dest / "new.txt").write_text("x")
    git(dest, "add", "new.txt")
    git(dest, "commit", "-qm", "agent commit")


def test_follow_up_run_checks_out_the_existing_branch(origin, tmp_path):
    dest = tmp_path / "ws"
    clone(f"file://{origin}", "main", None, dest)

    sha = checkout_branch(dest, "feature", None)

    assert sha == git(origin, "rev-parse", "feature")
    assert git(dest, "rev-parse", "--abbrev-ref", "HEAD") == "feature"
    assert (dest / "feature.txt").exists()


def test_fetch_sees_a_base_that_moved(origin, tmp_path):
    dest = tmp_path / "ws"
    base = clone(f"file://{origin}", "main", None, dest)
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(origin), str(other))
    git(other, "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "--allow-empty", "-m", "moved")
    git(other, "push", "-q", "origin", "main")

    moved = fetch(dest, "main", None)

    assert moved != base and moved == git(origin, "rev-parse", "main")
    assert head_sha(dest) == base  # the workspace itself stays where the agent left it


def test_a_url_with_credentials_is_refused(tmp_path):
    with pytest.raises(ValueError):
        clone("https://x-access-token:ghs_abcdefghijklmnopqrstuv@example.com/o/r.git", "main", None, tmp_path / "ws")


def test_token_clone_leaves_the_token_nowhere_in_the_workspace(fakehub, tmp_path):
    url = fakehub.create_repo("octo", "demo", {"README.md": "demo\n"})
    token = fakehub.installation_token("octo/demo")
    dest = tmp_path / "ws"

    started = time.monotonic()
    sha = clone(url, "main", token, dest)
    elapsed = time.monotonic() - started

    assert len(sha) == 40 and (dest / "README.md").read_text() == "demo\n"
    for path in dest.joinpath(".git").rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), f"token stored in {path}"
    assert git(dest, "remote", "get-url", "origin") == url
    assert elapsed < 5
    print(f"clone over HTTP with askpass: {elapsed:.3f} s")


def test_a_wrong_token_fails_without_echoing_it(fakehub, tmp_path):
    url = fakehub.create_repo("octo", "private-demo", {"README.md": "x\n"}, private=True)
    bad = "ghs_" + "W" * 36

    with pytest.raises(GitError) as failed:
        clone(url, "main", bad, tmp_path / "ws")

    assert bad not in str(failed.value)
