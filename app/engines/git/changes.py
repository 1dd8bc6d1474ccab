"""What an agent changed, as files to commit through the API, and the rules for what may be committed (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# GitHub rejects files over 100 MB outright (https://docs.github.com/en/repositories/working-with-files/
# managing-large-files/about-large-files-on-github). Large binaries bloat every clone forever, so we
# refuse binaries over 1 MB unless the caller allows more (LFS would be the right home for them).
GITHUB_MAX_FILE_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_BINARY_BYTES = 1024 * 1024
FILE_MODES = {"100644", "100755", "120000"}
GITLINK_MODE = "160000"
# Problems listed in a refusal; the rest are counted, so one runaway directory cannot flood a comment.
MAX_LISTED_PROBLEMS = 30


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
        listing = "\n".join(f"- `{path}`: {reason}" for path, reason in problems[:MAX_LISTED_PROBLEMS])
        more = len(problems) - MAX_LISTED_PROBLEMS
        if more > 0:
            listing += f"\n- and {more} more"
        super().__init__(f"These files cannot be committed:\n{listing}")


class RebaseConflict(Exception):
    """The agent's changes do not apply cleanly onto the new base."""


# A path component git reads as its own `.git` (read-cache.c verify_path with core.protectNTFS, on by
# default everywhere): `.git` in any case, trailing dots or spaces, an NTFS stream, or the 8.3 name GIT~1.
_DOTGIT = re.compile(r"(?:\.git|git~1)[. ]*(?::.*)?", re.IGNORECASE | re.DOTALL)
_DOTGITMODULES = re.compile(r"(?:\.gitmodules|gitmod~[1-4])[. ]*(?::.*)?", re.IGNORECASE | re.DOTALL)
# HFS+ ignores these code points, so `.g\u200cit` is `.git` there; git's fsck (which GitHub runs) refuses it.
_HFS_IGNORABLE = dict.fromkeys([*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF])
NAME_REFUSED = "has a name git refuses to commit: it would be read as the repository's own .git"
NESTED_REPOSITORY = "is a nested git repository (submodule); commit its files instead"
WORKFLOWS_DIR = ".github/workflows/"
# app.yml does not ask for `workflows`: a workflow pushed to a branch of the repository runs at once with
# its secrets, so no agent may change one. GitHub refuses such a push from the App anyway (422).
WORKFLOW_FILE = ("is a GitHub Actions workflow, which Draftsmith may not change (it does not hold the "
                 "`workflows` permission, so no agent can alter what your CI runs with its secrets); "
                 "apply that part yourself from the diff on the task page, or ask again without it")


def git_refuses(path: str, mode: str = "100644") -> bool:
    """Whether git (and so GitHub) refuses `path` in a tree, as `git add` would with an 'invalid path'."""
    for component in path.split("/"):
        if component in ("", ".", ".."):
            return True
        # core.protectNTFS also splits on backslashes, so `a\.git\config` is refused on Linux too.
        for part in component.split("\\"):
            if _DOTGIT.fullmatch(part) or (mode == "120000" and _DOTGITMODULES.fullmatch(part)):
                return True
            if part.translate(_HFS_IGNORABLE).lower() == ".git":
                return True
    return False


def is_binary(content: bytes) -> bool:
    return b"\0" in content[:8000]  # git's own heuristic


def content_problem(content: bytes, max_file_bytes: int = GITHUB_MAX_FILE_BYTES,
                    max_binary_bytes: int = DEFAULT_MAX_BINARY_BYTES) -> str | None:
    """Why a file's content cannot be committed, or None."""
    if len(content) > max_file_bytes:
        return size_problem(len(content), max_file_bytes)
    if is_binary(content) and len(content) > max_binary_bytes:
        return f"is a {len(content) / 1e6:.1f} MB binary file (limit {max_binary_bytes / 1e6:.0f} MB)"
    return None


def size_problem(size: int, max_file_bytes: int = GITHUB_MAX_FILE_BYTES) -> str:
    return f"is {size / 1e6:.1f} MB, over GitHub's {max_file_bytes / 1e6:.0f} MB limit"
