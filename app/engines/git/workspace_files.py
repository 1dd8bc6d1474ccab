"""Read an agent's workspace as plain files: no symlink followed, no `.git` opened, `.gitignore` honoured.

The agent owns everything under the workspace, its `.git` included. Git run over it would obey that
`.git`'s config (hooks, fsmonitor, filters, alternates, url rewrites...), so the worker reads the files
itself and hands git only bytes (app.engines.git.private_repo). Every open is relative to a directory
descriptor with O_NOFOLLOW, so a symlink swapped in mid-walk is refused rather than followed.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pathspec import GitIgnoreSpec
from pathspec.patterns.gitignore.spec import GitIgnorePatternError, GitIgnoreSpecPattern

from app.engines.git.changes import (
    GITHUB_MAX_FILE_BYTES,
    GITLINK_MODE,
    NAME_REFUSED,
    NESTED_REPOSITORY,
    content_problem,
    git_refuses,
    size_problem,
)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO the agent left behind must not hang the worker.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
NOT_UTF8 = "has a name that is not valid UTF-8, which GitHub cannot store"


@dataclass(frozen=True)
class Entry:
    """One tree entry: `content` is kept only for files that differ from what the base tracked."""

    mode: str  # "100644" | "100755" | "120000" | "160000"
    sha: str
    content: bytes | None = None


@dataclass
class WorkspaceFiles:
    entries: dict[str, Entry] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)


def blob_sha(content: bytes) -> str:
    """The id git gives a blob with this content."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class _Tracked:
    """The base tree's entries, for the two exceptions to .gitignore: tracked files and kept gitlinks."""

    def __init__(self, entries: Mapping[str, tuple[str, str]]) -> None:
        self.entries = entries
        self.dirs = {path.rsplit("/", 1)[0] for path in entries if "/" in path}
        self.dirs |= {parent for d in list(self.dirs) for parent in _parents(d)}

    def holds(self, path: str) -> bool:
        return path in self.entries or path in self.dirs


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


class _Ignores:
    """The .gitignore files from the root down to one directory; the deepest one that decides wins."""

    def __init__(self, stack: tuple[tuple[str, GitIgnoreSpec], ...] = ()) -> None:
        self.stack = stack

    def below(self, directory: str, patterns: list[GitIgnoreSpecPattern]) -> _Ignores:
        if not patterns:
            return self
        return _Ignores((*self.stack, (directory, GitIgnoreSpec(patterns))))

    def ignored(self, path: str, is_dir: bool) -> bool:
        for base, rules in reversed(self.stack):
            relative = path[len(base) + 1:] if base else path
            verdict = rules.check_file(relative + ("/" if is_dir else "")).include
            if verdict is not None:
                return verdict
        return False


def read_workspace(root: Path, tracked: Mapping[str, tuple[str, str]],
                   max_file_bytes: int = GITHUB_MAX_FILE_BYTES) -> WorkspaceFiles:
    """Every file `git add -A` would stage in `root`, with a reason for each one that cannot be committed.

    `tracked` maps the base commit's paths to (mode, sha): tracked files are kept even when ignored,
    and a tracked submodule stays as it was (a fresh clone leaves its directory empty).
    """
    result = WorkspaceFiles()
    fd = os.open(root, _DIR_FLAGS)
    try:
        _walk(fd, "", _Tracked(tracked), _Ignores(), result, max_file_bytes)
    finally:
        os.close(fd)
    return result


def _walk(fd: int, prefix: str, tracked: _Tracked, ignores: _Ignores, out: WorkspaceFiles,
          max_file_bytes: int) -> None:
    ignores = ignores.below(prefix, _read_ignore_file(fd))
    with os.scandir(fd) as listing:
        names = sorted(entry.name for entry in listing)
    for name in names:
        if name == ".git":
            continue  # the agent's own repository (or, below the root, a nested one: see below)
        path = f"{prefix}/{name}" if prefix else name
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        is_dir = stat.S_ISDIR(info.st_mode)
        if ignores.ignored(path, is_dir) and not tracked.holds(path):
            continue
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            out.problems.append((path.encode("utf-8", "backslashreplace").decode(), NOT_UTF8))
            continue
        if is_dir:
            _directory(fd, name, path, tracked, ignores, out, max_file_bytes)
        elif git_refuses(path, "120000" if stat.S_ISLNK(info.st_mode) else "100644"):
            out.problems.append((path, NAME_REFUSED))
        elif stat.S_ISLNK(info.st_mode):
            target = os.fsencode(os.readlink(name, dir_fd=fd))
            _add(out, tracked, path, "120000", target)
        elif stat.S_ISREG(info.st_mode):
            _file(fd, name, path, info, tracked, out, max_file_bytes)
        # Sockets, FIFOs and devices have no place in git; git skips them too.


def _directory(parent: int, name: str, path: str, tracked: _Tracked, ignores: _Ignores, out: WorkspaceFiles,
               max_file_bytes: int) -> None:
    kept = tracked.entries.get(path)
    if kept is not None and kept[0] == GITLINK_MODE:
        out.entries[path] = Entry(GITLINK_MODE, kept[1])
        return
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError:
        return  # swapped for a symlink or removed since the listing: nothing to read
    try:
        if _has_git(fd):
            out.problems.append((path, NESTED_REPOSITORY))
            return
        if git_refuses(path + "/x"):
            # Refused as a directory name: list what it holds, as those are the files the agent wrote.
            before = len(out.entries)
            _walk(fd, path, tracked, ignores, out, max_file_bytes)
            for inner in list(out.entries)[before:]:
                out.problems.append((inner, NAME_REFUSED))
                del out.entries[inner]
            return
        _walk(fd, path, tracked, ignores, out, max_file_bytes)
    finally:
        os.close(fd)


def _has_git(fd: int) -> bool:
    try:
        os.stat(".git", dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _file(parent: int, name: str, path: str, info: os.stat_result, tracked: _Tracked, out: WorkspaceFiles,
          max_file_bytes: int) -> None:
    mode = "100755" if info.st_mode & stat.S_IXUSR else "100644"
    if info.st_size > max_file_bytes:
        out.problems.append((path, size_problem(info.st_size, max_file_bytes)))
        return
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=parent)
    except OSError:
        return
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        with os.fdopen(fd, "rb", closefd=False) as handle:
            content = handle.read(max_file_bytes + 1)
    finally:
        os.close(fd)
    if len(content) > max_file_bytes:
        out.problems.append((path, size_problem(len(content), max_file_bytes)))
        return
    _add(out, tracked, path, mode, content)


def _add(out: WorkspaceFiles, tracked: _Tracked, path: str, mode: str, content: bytes) -> None:
    sha = blob_sha(content)
    if tracked.entries.get(path) == (mode, sha):
        out.entries[path] = Entry(mode, sha)
    elif problem := content_problem(content):  # a large binary: say so now, with every other problem
        out.problems.append((path, problem))
    else:
        out.entries[path] = Entry(mode, sha, content)


def _read_ignore_file(fd: int) -> list[GitIgnoreSpecPattern]:
    """The patterns of this directory's .gitignore; like git since 2.32, a symlinked one is not followed."""
    try:
        handle = os.open(".gitignore", _FILE_FLAGS, dir_fd=fd)
    except OSError:
        return []
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            return []
        with os.fdopen(handle, "rb", closefd=False) as stream:
            data = stream.read(1024 * 1024)
    finally:
        os.close(handle)
    return _patterns(data)


def _patterns(data: bytes) -> list[GitIgnoreSpecPattern]:
    """The file's patterns, one per line as git splits them, leaving out the malformed ones as git does.

    pathspec refuses a whole file over one bad line (a dangling backslash, say); the agent writes
    this file, so one bad line must not fail the run. Names that are not UTF-8 stay surrogate-escaped,
    as os.scandir gives them, so a pattern naming one still matches it.
    """
    patterns = []
    for line in data.decode("utf-8", "surrogateescape").split("\n"):
        try:
            patterns.append(GitIgnoreSpecPattern(line))
        except GitIgnorePatternError:
            continue
    return [pattern for pattern in patterns if pattern.include is not None]


def commit_marker(root: Path) -> tuple[int, int] | None:
    """(size, mtime) of the agent's `.git/logs/HEAD`, which grows with each commit it makes; None if absent.

    Only a hint for when to checkpoint: each directory is opened with O_NOFOLLOW and nothing is read.
    """
    fds: list[int] = []
    try:
        fds.append(os.open(root, _DIR_FLAGS))
        for name in (".git", "logs"):
            fds.append(os.open(name, _DIR_FLAGS, dir_fd=fds[-1]))
        info = os.stat("HEAD", dir_fd=fds[-1], follow_symlinks=False)
    except OSError:
        return None
    finally:
        for fd in fds:
            os.close(fd)
    return (info.st_size, info.st_mtime_ns) if stat.S_ISREG(info.st_mode) else None
