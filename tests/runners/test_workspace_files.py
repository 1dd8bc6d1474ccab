"""Reading a workspace as plain files picks exactly what `git add -A` would, and refuses the names git refuses."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.engines.git.changes import git_refuses
from app.engines.git.workspace_files import NOT_UTF8, blob_sha, commit_marker, read_workspace

GIT_ENV = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1", "LANG": "C"}


def git(cwd: Path, *args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, input=input, capture_output=True, check=check)


def write(root: Path, files: dict[str, str]) -> None:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


def staged_by_git(tree: Path, tmp_path: Path) -> set[str]:
    """What real git stages from a copy of `tree` (no config of anyone's, a fresh repository)."""
    copy = tmp_path / "as-git-sees-it"
    shutil.copytree(tree, copy, symlinks=True)
    git(copy, "init", "-q")
    git(copy, "add", "-A")
    return set(git(copy, "ls-files", "-z").stdout.decode().split("\0")) - {""}


def test_the_files_picked_are_the_ones_git_add_would_stage(tmp_path):
    tree = tmp_path / "ws"
    write(tree, {
        ".gitignore": "*.log\n/build/\n!keep.log\ndocs/*.tmp\n# a comment\n\\#literal\n",
        "a.log": "x", "keep.log": "x", "#literal": "x", "notes.txt": "x",
        "build/out.o": "x", "src/build/inner.o": "x",
        "src/.gitignore": "*.gen\n!wanted.gen\n/local\n",
        "src/x.gen": "x", "src/wanted.gen": "x", "src/local": "x", "src/deep/local": "x",
        "docs/a.tmp": "x", "docs/sub/b.tmp": "x", "docs/readme.md": "x",
        "vendor/.gitignore": "*\n!.gitignore\n", "vendor/lib.js": "x",
        "space name.txt": "x", "ünïcode.txt": "x",
    })
    os.symlink("notes.txt", tree / "link")

    picked = read_workspace(tree, {})

    assert picked.problems == []
    assert set(picked.entries) == staged_by_git(tree, tmp_path)


def test_content_and_modes_match_git_and_unchanged_files_carry_no_bytes(tmp_path):
    tree = tmp_path / "ws"
    write(tree, {"same.txt": "same\n", "changed.txt": "new\n", "tool.sh": "#!/bin/sh\n"})
    (tree / "tool.sh").chmod(0o755)
    tracked = {"same.txt": ("100644", blob_sha(b"same\n")), "changed.txt": ("100644", blob_sha(b"old\n"))}

    entries = read_workspace(tree, tracked).entries

    assert entries["same.txt"].content is None
    assert entries["changed.txt"].content == b"new\n"
    assert (entries["tool.sh"].mode, entries["tool.sh"].content) == ("100755", b"#!/bin/sh\n")
    hashed = git(tree, "hash-object", "--no-filters", "changed.txt").stdout.decode().strip()
    assert entries["changed.txt"].sha == hashed


def test_a_tracked_submodule_is_kept_and_an_untracked_nested_repository_is_refused(tmp_path):
    tree = tmp_path / "ws"
    (tree / "libs" / "tracked").mkdir(parents=True)  # a fresh clone leaves a submodule's directory empty
    (tree / "libs" / "new").mkdir()
    (tree / "libs" / "new" / ".git").write_text("gitdir: /somewhere/else\n")
    (tree / "libs" / "new" / "a.txt").write_text("a")
    sub = "1" * 40

    picked = read_workspace(tree, {"libs/tracked": ("160000", sub)})

    assert picked.entries["libs/tracked"].sha == sub
    assert [path for path, _ in picked.problems] == ["libs/new"]


def test_a_name_that_is_not_utf8_is_refused_by_name(tmp_path):
    tree = tmp_path / "ws"
    tree.mkdir()
    (tree / os.fsdecode(b"caf\xe9.txt")).write_text("x")

    picked = read_workspace(tree, {})

    assert picked.problems == [("caf\\udce9.txt", NOT_UTF8)]


@pytest.mark.parametrize("path", [
    ".git/config", ".Git/config", ".GIT", "a/.git/x", ".git./x", ".git /x", ".git. . /x", "git~1/x", "GIT~1",
    "a\\.git\\config", ".git::$INDEX_ALLOCATION/x", ".git:stream", "sub/.gIt",
])
def test_names_git_refuses_are_refused(path):
    assert git_refuses(path)


@pytest.mark.parametrize("path", [".gitignore", ".gitmodules", ".github/workflows/x.yml", "a/.gitx", "..git",
                                  ".git~1", "a/GIT~2/x", "git", "x.git", "a/b.git/c"])
def test_ordinary_names_near_those_are_accepted(path):
    assert not git_refuses(path)


def test_hfs_spellings_of_dot_git_and_a_symlinked_gitmodules_are_refused():
    assert git_refuses(".g\u200cit/config")
    assert git_refuses("\ufeff.GIT")
    assert git_refuses(".gitmodules", "120000") and not git_refuses(".gitmodules", "100644")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet=".gitGIT~1 :\\$ax", min_size=1, max_size=7), min_size=1, max_size=3))
def test_refusals_agree_with_git_itself(tmp_path_factory, components):
    path = "/".join(components)
    if any(c in (".", "..") for c in components):
        return  # a walk of a real directory never yields these
    repo = tmp_path_factory.getbasetemp() / "refusals-repo"
    if not repo.exists():
        git(repo.parent, "init", "-q", "--bare", str(repo))
    env = {**GIT_ENV, "GIT_DIR": str(repo), "GIT_INDEX_FILE": str(repo / "scratch-index")}
    blob = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # the empty blob
    added = subprocess.run(["git", "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"],
                           env=env, capture_output=True)
    subprocess.run(["git", "read-tree", "--empty"], env=env, check=True)
    assert git_refuses(path) == (added.returncode != 0), (path, added.stderr)


def test_a_malformed_gitignore_line_is_skipped_and_the_others_still_apply(tmp_path):
    tree = tmp_path / "ws"
    write(tree, {".gitignore": "*.log\ntrailing\\\n[unclosed\n*.tmp\r\n", "a.log": "x", "b.tmp": "x", "c.txt": "x",
                 "trailing\\": "x", "[unclosed": "x"})

    picked = read_workspace(tree, {})

    assert "a.log" not in picked.entries and "c.txt" in picked.entries
    assert set(picked.entries) == staged_by_git(tree, tmp_path)


def test_a_symlinked_gitignore_is_not_followed(tmp_path):
    tree = tmp_path / "ws"
    write(tree, {"patterns": "*.txt\n", "a.txt": "x"})
    os.symlink("patterns", tree / ".gitignore")

    picked = read_workspace(tree, {})

    assert "a.txt" in picked.entries
    assert set(picked.entries) == staged_by_git(tree, tmp_path)


def test_the_commit_marker_changes_with_each_agent_commit_and_never_follows_a_symlinked_git(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    assert commit_marker(work) is None
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "a",
           "GIT_COMMITTER_EMAIL": "a@x"}
    (work / "a.txt").write_text("a")
    subprocess.run(["git", "-C", str(work), "add", "."], check=True)
    subprocess.run(["git", "-C", str(work), "commit", "-qm", "one"], check=True, env=env)
    first = commit_marker(work)
    assert first is not None
    subprocess.run(["git", "-C", str(work), "commit", "-q", "--allow-empty", "-m", "two"], check=True, env=env)
    assert commit_marker(work) not in (None, first)

    # An agent that swaps its .git for a link to somewhere else gets no answer from there
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(work / ".git"), str(elsewhere))
    (work / ".git").symlink_to(elsewhere)
    assert commit_marker(work) is None
