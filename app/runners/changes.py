"""What the agent changed in its workspace, as files to commit through the API and a diff to show."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# GitHub rejects files over 100 MB outright (https://docs.github.com/en/repositories/working-with-files/
# managing-large-files/about-large-files-on-github). Large binaries bloat every clone forever, so we
# refuse binaries over 1 MB unless the caller allows more (LFS would be the right home for them).
GITHUB_MAX_FILE_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_BINARY_BYTES = 1024 * 1024
_MODES = {"100644", "100755", "120000"}
# Repository-controlled settings that could run code or change what we read (see workspace._HARDENING).
_SAFE = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "safe.directory=*",
         "-c", "core.autocrlf=false", "-c", "core.safecrlf=false"]


@dataclass(frozen=True)
class FileChange:
    path: str
    mode: str  # "100644" | "100755" | "120000" (symlink: content is the link target)
    content: bytes | None  # None: the file was deleted


@dataclass
class Changes:
    files: list[FileChange] = field(default_factory=list)
    diff: str = ""

    @property
    def empty(self) -> bool:
        return not self.files


class ChangesRefused(Exception):
    """Some changed files cannot be committed; `problems` holds (path, reason) for each."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        listing = "\n".join(f"- `{path}`: {reason}" for path, reason in problems)
        super().__init__(f"These files cannot be committed:\n{listing}")


class RebaseConflict(Exception):
    """The agent's changes do not apply cleanly onto the new base."""


class _Git:
    """git over the workspace's files with a private git dir, index and config.

    After a run the agent owns `.git`; reading objects from it is safe (alternates), but its config,
    hooks and attributes-driven filters would run code as the worker, so we never use it as GIT_DIR.
    """

    def __init__(self, workspace: Path, root: Path) -> None:
        git_dir = root / "git"
        subprocess.run(["git", "init", "-q", "--bare", str(git_dir)], check=True, capture_output=True,
                       env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root)})
        exclude = workspace / ".git" / "info" / "exclude"
        if exclude.is_file() and not exclude.is_symlink():
            shutil.copyfile(exclude, git_dir / "info" / "exclude")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_DIR": str(git_dir),
            "GIT_WORK_TREE": str(workspace),
            "GIT_INDEX_FILE": str(root / "index"),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(workspace / ".git" / "objects"),
            "LANG": "C",
        }

    def __call__(self, *args: str, input: bytes | None = None, check: bool = True) -> bytes:
        proc = subprocess.run(["git", *_SAFE, *args], env=self.env, input=input, capture_output=True, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout

    def snapshot(self, base_sha: str) -> str:
        """The tree of the workspace as it is now, .gitignore respected, starting from `base_sha`."""
        self("read-tree", base_sha)
        self("add", "-A", "--", ".")
        return self("write-tree").decode().strip()


@contextmanager
def _private_git(workspace: Path) -> Iterator[_Git]:
    with tempfile.TemporaryDirectory(prefix="draftsmith-changes-") as root:
        yield _Git(Path(workspace), Path(root))


def _is_binary(content: bytes) -> bool:
    return b"\0" in content[:8000]  # git's own heuristic


def _changes_between(git: _Git, old: str, new: str, max_file_bytes: int, max_binary_bytes: int) -> Changes:
    raw = git("diff-tree", "-r", "-z", "--no-renames", old, new)
    fields = raw.split(b"\0")
    entries: list[tuple[str, str, str, str]] = []  # (status, new mode, new sha, path)
    for i in range(0, len(fields) - 1, 2):
        meta, path = fields[i].decode(), os.fsdecode(fields[i + 1])
        _old_mode, new_mode, _old_sha, new_sha, status = meta.lstrip(":").split(" ")
        entries.append((status, new_mode, new_sha, path))

    wanted = [sha for status, mode, sha, _path in entries if status != "D" and mode in _MODES]
    blobs = _read_blobs(git, wanted) if wanted else {}
    problems: list[tuple[str, str]] = []
    files: list[FileChange] = []
    for status, mode, sha, path in entries:
        if status == "D":
            files.append(FileChange(path, "100644", None))
            continue
        if mode not in _MODES:
            problems.append((path, "is a nested git repository (submodule); commit its files instead"))
            continue
        content = blobs[sha]
        if len(content) > max_file_bytes:
            problems.append((path, f"is {len(content) / 1e6:.1f} MB, over GitHub's {max_file_bytes / 1e6:.0f} MB limit"))
        elif _is_binary(content) and len(content) > max_binary_bytes:
            problems.append((path, f"is a {len(content) / 1e6:.1f} MB binary file (limit {max_binary_bytes / 1e6:.0f} MB)"))
        else:
            files.append(FileChange(path, mode, content))
    if problems:
        raise ChangesRefused(problems)
    diff = git("diff", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames", old, new)
    return Changes(files=files, diff=diff.decode("utf-8", errors="replace"))


def _read_blobs(git: _Git, shas: list[str]) -> dict[str, bytes]:
    out = git("cat-file", "--batch", input=("\n".join(shas) + "\n").encode())
    blobs: dict[str, bytes] = {}
    pos = 0
    while pos < len(out):
        header_end = out.index(b"\n", pos)
        sha, _type, size = out[pos:header_end].decode().split(" ")
        start = header_end + 1
        blobs[sha] = out[start:start + int(size)]
        pos = start + int(size) + 1
    return blobs


def collect_changes(
    workspace: Path,
    base_sha: str,
    *,
    max_file_bytes: int = GITHUB_MAX_FILE_BYTES,
    max_binary_bytes: int = DEFAULT_MAX_BINARY_BYTES,
) -> Changes:
    """Every file added, modified or deleted in `workspace` since `base_sha` (commits the agent made
    included), ignoring what .gitignore ignores. Raises ChangesRefused listing files we must not commit."""
    with _private_git(workspace) as git:
        tree = git.snapshot(base_sha)
        return _changes_between(git, base_sha, tree, max_file_bytes, max_binary_bytes)


def rebase_changes(
    workspace: Path,
    base_sha: str,
    new_base_sha: str,
    *,
    max_file_bytes: int = GITHUB_MAX_FILE_BYTES,
    max_binary_bytes: int = DEFAULT_MAX_BINARY_BYTES,
) -> Changes:
    """The agent's changes replayed onto `new_base_sha` (which must be fetched into the workspace),
    as files relative to it; raises RebaseConflict when they do not apply cleanly."""
    with _private_git(workspace) as git:
        tree = git.snapshot(base_sha)
        patch = git("diff", "--binary", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames", base_sha, tree)
        git("read-tree", new_base_sha)
        if patch.strip():
            applied = subprocess.run(
                ["git", *_SAFE, "apply", "--cached", "--3way", "--whitespace=nowarn", "-"],
                env=git.env, input=patch, capture_output=True, check=False,
            )
            if applied.returncode != 0:
                raise RebaseConflict(applied.stderr.decode(errors="replace").strip())
        new_tree = git("write-tree").decode().strip()
        return _changes_between(git, new_base_sha, new_tree, max_file_bytes, max_binary_bytes)


def apply_check(workspace: Path, base_sha: str, new_base_sha: str) -> bool:
    """Whether the agent's changes apply cleanly onto `new_base_sha`."""
    try:
        rebase_changes(workspace, base_sha, new_base_sha, max_file_bytes=GITHUB_MAX_FILE_BYTES,
                       max_binary_bytes=GITHUB_MAX_FILE_BYTES)
    except RebaseConflict:
        return False
    return True
