"""collect_changes sees exactly what the agent did to the workspace, and nothing git would ignore."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from app.runners.changes import ChangesRefused, RebaseConflict, apply_check, collect_changes, rebase_changes
from app.runners.workspace import clone, fetch


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def origin(tmp_path) -> Path:
    seed = tmp_path / "seed"
    seed.mkdir()
    git(seed, "init", "-q", "-b", "main")
    (seed / "README.md").write_text("hello\n")
    (seed / "remove-me.txt").write_text("bye\n")
    (seed / "run.sh").write_text("#!/bin/sh\necho run\n")
    (seed / ".gitignore").write_text("build/\n*.log\n")
    (seed / "src").mkdir()
    (seed / "src" / "app.py").write_text("a = 1\nb = 2\nc = 3\n")
    git(seed, "add", "-A")
    git(seed, "-c", "user.name=s", "-c", "user.email=s@s", "commit", "-qm", "seed")
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(bare))
    return bare


@pytest.fixture
def workspace(origin, tmp_path) -> tuple[Path, str]:
    dest = tmp_path / "ws"
    return dest, clone(f"file://{origin}", "main", None, dest)


def by_path(changes):
    return {change.path: change for change in changes.files}


def test_added_modified_deleted_executable_and_symlink_files_are_found(workspace):
    ws, base = workspace
    (ws / "README.md").write_text("hello, world\n")
    (ws / "remove-me.txt").unlink()
    (ws / "docs").mkdir()
    (ws / "docs" / "guide.md").write_text("# Guide\n")
    (ws / "run.sh").chmod(0o755)
    (ws / "tool").write_text("#!/bin/sh\n")
    (ws / "tool").chmod(0o755)
    os.symlink("docs/guide.md", ws / "GUIDE.md")

    changes = collect_changes(ws, base)

    files = by_path(changes)
    assert set(files) == {"README.md", "remove-me.txt", "docs/guide.md", "run.sh", "tool", "GUIDE.md"}
    assert files["README.md"].content == b"hello, world\n" and files["README.md"].mode == "100644"
    assert files["remove-me.txt"].content is None
    assert files["docs/guide.md"].content == b"# Guide\n"
    assert files["run.sh"].mode == "100755" and files["run.sh"].content == b"#!/bin/sh\necho run\n"
    assert files["tool"].mode == "100755"
    assert files["GUIDE.md"].mode == "120000" and files["GUIDE.md"].content == b"docs/guide.md"
    assert "+hello, world" in changes.diff and "deleted file mode" in changes.diff


def test_ignored_files_are_left_out(workspace):
    ws, base = workspace
    (ws / "build").mkdir()
    (ws / "build" / "out.bin").write_bytes(b"\0" * 10)
    (ws / "debug.log").write_text("noise\n")
    (ws / ".git" / "info" / "exclude").write_text("local-notes.txt\n")
    (ws / "local-notes.txt").write_text("mine\n")
    (ws / "kept.txt").write_text("kept\n")

    assert set(by_path(collect_changes(ws, base))) == {"kept.txt"}


def test_commits_the_agent_made_count_as_changes(workspace):
    ws, base = workspace
    (ws / "committed.txt").write_text("agent committed this\n")
    git(ws, "add", "committed.txt")
    git(ws, "commit", "-qm", "agent")
    (ws / "uncommitted.txt").write_text("and left this\n")

    assert set(by_path(collect_changes(ws, base))) == {"committed.txt", "uncommitted.txt"}


def test_no_changes_is_empty(workspace):
    ws, base = workspace
    changes = collect_changes(ws, base)
    assert changes.empty and changes.diff == ""


def test_large_binaries_and_nested_repositories_are_refused_with_a_list(workspace):
    ws, base = workspace
    (ws / "model.bin").write_bytes(b"\0\1" * 600_000)
    (ws / "small.png").write_bytes(b"\x89PNG\0" * 10)
    nested = ws / "vendor" / "lib"
    nested.mkdir(parents=True)
    git(nested, "init", "-q")
    (nested / "x.txt").write_text("x")
    git(nested, "add", "x.txt")
    git(nested, "-c", "user.name=s", "-c", "user.email=s@s", "commit", "-qm", "x")

    with pytest.raises(ChangesRefused) as refused:
        collect_changes(ws, base)

    assert {path for path, _ in refused.value.problems} == {"model.bin", "vendor/lib"}
    assert "model.bin" in str(refused.value) and "1.2 MB binary" in str(refused.value)


def test_a_text_file_over_the_limit_is_refused(workspace):
    ws, base = workspace
    (ws / "huge.txt").write_text("a" * 2000)

    with pytest.raises(ChangesRefused, match="huge.txt"):
        collect_changes(ws, base, max_file_bytes=1000)


def test_the_workspace_git_config_cannot_run_code_in_the_worker(workspace, tmp_path):
    ws, base = workspace
    marker = tmp_path / "code-ran"
    git(ws, "config", "core.fsmonitor", f"touch {marker}; false")
    git(ws, "config", "filter.evil.clean", f"touch {marker}; cat")
    (ws / ".gitattributes").write_text("* filter=evil\n")
    (ws / "README.md").write_text("changed\n")

    changes = collect_changes(ws, base)

    assert not marker.exists()
    assert by_path(changes)["README.md"].content == b"changed\n"


def moved_base(origin: Path, tmp_path: Path, path: str, content: str) -> None:
    other = tmp_path / "upstream"
    if not other.exists():
        git(tmp_path, "clone", "-q", str(origin), str(other))
    (other / path).write_text(content)
    git(other, "add", "-A")
    git(other, "-c", "user.name=u", "-c", "user.email=u@u", "commit", "-qm", "upstream")
    git(other, "push", "-q", "origin", "main")


def test_changes_replay_onto_a_moved_base_when_they_apply(workspace, origin, tmp_path):
    ws, base = workspace
    moved_base(origin, tmp_path, "src/app.py", "a = 10\nb = 2\nc = 3\n")
    (ws / "src" / "app.py").write_text("a = 1\nb = 2\nc = 30\n")
    new_base = fetch(ws, "main", None)

    assert apply_check(ws, base, new_base)
    rebased = rebase_changes(ws, base, new_base)

    assert by_path(rebased)["src/app.py"].content == b"a = 10\nb = 2\nc = 30\n"


def test_conflicting_changes_are_reported(workspace, origin, tmp_path):
    ws, base = workspace
    moved_base(origin, tmp_path, "README.md", "upstream wording\n")
    (ws / "README.md").write_text("agent wording\n")
    new_base = fetch(ws, "main", None)

    assert not apply_check(ws, base, new_base)
    with pytest.raises(RebaseConflict):
        rebase_changes(ws, base, new_base)
