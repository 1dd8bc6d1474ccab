"""A bare repository the worker owns outside every workspace: the only git the worker runs once an agent has.

It is fetched into with a token scoped to one repository, passed per command as a header for an exact
URL (no config lookup can redirect it); it gives the agent its workspace as a plain copy; and after the
agent it turns the workspace's files (read by app.engines.git.workspace_files, never through the agent's
`.git`) into a snapshot commit, rebases that onto a moved base, and lists the changes to commit.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from app.logs import scrub
from app.engines.git.changes import (
    DEFAULT_MAX_BINARY_BYTES,
    FILE_MODES,
    GITHUB_MAX_FILE_BYTES,
    NESTED_REPOSITORY,
    Changes,
    ChangesRefused,
    FileChange,
    WORKFLOW_FILE,
    WORKFLOWS_DIR,
    RebaseConflict,
    content_problem,
)
from app.engines.git.workspace_files import read_workspace

GIT_USER_NAME = "Draftsmith"
GIT_USER_EMAIL = "draftsmith@users.noreply.github.com"
SNAPSHOT_REF = "refs/draftsmith/snapshot"
_SNAPSHOT_IDENT = f"{GIT_USER_NAME} <{GIT_USER_EMAIL}> 0 +0000"
_OWN = object()  # "this repository" as a git_dir, distinct from None (no GIT_DIR: `init`, `clone`)


class GitError(RuntimeError):
    """A git command failed; the message holds its scrubbed stderr."""


def _config_env(settings: dict[str, str]) -> dict[str, str]:
    """`git -c` in the environment, so values (the auth header) stay out of argv and `ps`."""
    env = {"GIT_CONFIG_COUNT": str(len(settings))}
    for i, (key, value) in enumerate(settings.items()):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


# For every command: nothing that could run a program or reach another host, whatever a config says.
_ALWAYS = {
    "core.hooksPath": "/dev/null",
    "core.fsmonitor": "false",
    "core.attributesFile": "/dev/null",
    "core.excludesFile": "/dev/null",
    "credential.helper": "",
    "protocol.allow": "never",
    "http.followRedirects": "false",
    "gc.auto": "0",
}


class PrivateRepo:
    """Create with `PrivateRepo.create(path)`; `path` must lie outside anything a sandbox can see."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).absolute()  # git runs in `home`, where a relative GIT_DIR or index would miss
        self.home = self.path.with_name(self.path.name + "-home")

    @classmethod
    def create(cls, path: Path) -> PrivateRepo:
        repo = cls(path)
        repo.home.mkdir(parents=True, exist_ok=True)
        repo.home.chmod(0o700)
        repo._git(["init", "--quiet", "--bare", str(repo.path)], git_dir=None)
        return repo

    def _env(self, git_dir: Path | None, settings: dict[str, str]) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),  # empty: no user gitconfig, credentials or .netrc of the worker's account
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_ATTR_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_NO_REPLACE_OBJECTS": "1",
            "LANG": "C",
            "LC_ALL": "C",
        }
        if git_dir is not None:
            env["GIT_DIR"] = str(git_dir)
        env.update(_config_env({**_ALWAYS, **settings}))
        return env

    def _git(self, args: list[str], *, git_dir: Path | None | object = _OWN, settings: dict[str, str] | None = None,
             extra_env: dict[str, str] | None = None, input: bytes | None = None, secrets: tuple[str, ...] = (),
             timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        env = self._env(self.path if git_dir is _OWN else git_dir, settings or {})  # type: ignore[arg-type]
        env.update(extra_env or {})
        proc = subprocess.run(["git", *args], env=env, input=input, capture_output=True, cwd=self.home,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            message = (proc.stderr or proc.stdout).decode(errors="replace").strip()
            raise GitError(f"git {args[0]} failed: {scrub(message, list(secrets))}")
        return proc

    def git(self, *args: str, input: bytes | None = None) -> bytes:
        return self._git(list(args), input=input).stdout

    # -- from GitHub ---------------------------------------------------------------------------------
    def fetch(self, url: str, branch: str, token: str | None) -> str:
        """Fetch `branch` of `url` into refs/heads/<branch>; returns its sha.

        The token travels only as this command's Authorization header for this URL: nothing is read from
        a config, a credential helper or the environment, and redirects are refused.
        """
        parts = urlsplit(url)
        if parts.username or parts.password:
            raise ValueError("pass the token separately, not in the URL")
        settings = {f"protocol.{parts.scheme}.allow": "always"}
        secrets: tuple[str, ...] = ()
        if token:
            basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
            settings["http.extraHeader"] = f"Authorization: Basic {basic}"
            secrets = (token, basic)
        self._git(["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--", url,
                   f"+refs/heads/{branch}:refs/heads/{branch}"], settings=settings, secrets=secrets)
        return self.rev_parse(f"refs/heads/{branch}")

    def rev_parse(self, rev: str) -> str:
        return self.git("rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}").decode().strip()

    # -- to the agent --------------------------------------------------------------------------------
    def populate_workspace(self, workspace: Path, branch: str, origin_url: str) -> None:
        """Give the agent `branch` as a repository of its own in `workspace` (which must not exist).

        A full copy, no hardlinks or alternates: nothing the agent does to it reaches this repository.
        """
        self._git(["clone", "--quiet", "--no-hardlinks", "--no-tags", "--single-branch", "--branch", branch,
                   "--", str(self.path), str(workspace)], git_dir=None, settings={"protocol.file.allow": "always"})
        # Still ours: the agent has not run yet. Afterwards nothing of the worker opens this .git again.
        agent_git = Path(workspace) / ".git"
        for key, value in (("remote.origin.url", origin_url), ("user.name", GIT_USER_NAME),
                           ("user.email", GIT_USER_EMAIL), ("advice.detachedHead", "false")):
            self._git(["config", key, value], git_dir=agent_git)

    # -- after the agent -----------------------------------------------------------------------------
    def tracked(self, rev: str) -> dict[str, tuple[str, str]]:
        """path -> (mode, sha) for every blob and submodule in `rev`."""
        entries: dict[str, tuple[str, str]] = {}
        for record in self.git("ls-tree", "-r", "-z", "--full-tree", rev).split(b"\0"):
            if not record:
                continue
            meta, path = record.split(b"\t", 1)
            mode, _kind, sha = meta.decode().split(" ")
            entries[os.fsdecode(path)] = (mode, sha)
        return entries

    def snapshot(self, workspace: Path, parent: str, max_file_bytes: int = GITHUB_MAX_FILE_BYTES) -> str:
        """Commit the workspace's files as they are now (.gitignore honoured) on top of `parent`.

        Raises ChangesRefused listing files git or GitHub would refuse. Returns the snapshot's sha.
        """
        tracked = self.tracked(parent)
        files = read_workspace(workspace, tracked, max_file_bytes)
        if files.problems:
            raise ChangesRefused(files.problems)
        stream = [f"commit {SNAPSHOT_REF}\ncommitter {_SNAPSHOT_IDENT}\ndata 8\nsnapshot\nfrom {parent}\n".encode()]
        for path, entry in files.entries.items():
            if tracked.get(path) == (entry.mode, entry.sha):
                continue
            if entry.content is None:  # a kept submodule, or a blob this repository already holds
                stream.append(f"M {entry.mode} {entry.sha} ".encode() + _quote(path) + b"\n")
            else:
                stream.append(f"M {entry.mode} inline ".encode() + _quote(path) + b"\n")
                stream.append(b"data %d\n" % len(entry.content) + entry.content + b"\n")
        for path in tracked.keys() - files.entries.keys():
            stream.append(b"D " + _quote(path) + b"\n")
        stream.append(b"done\n")
        self._git(["fast-import", "--quiet", "--done", "--force"], input=b"".join(stream))
        return self.rev_parse(SNAPSHOT_REF)

    def apply_patch(self, base: str, patch: bytes) -> str:
        """Commit `patch` (from `git diff --binary`, made elsewhere) on top of `base`; GitError if it fails."""
        with tempfile.TemporaryDirectory(dir=self.home) as scratch:
            index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            self._git(["read-tree", base], extra_env=index)
            if patch.strip():
                self._git(["apply", "--cached", "--binary", "--whitespace=nowarn", "-"], extra_env=index, input=patch)
            tree = self._git(["write-tree"], extra_env=index).stdout.decode().strip()
        return self._commit(tree, base)

    def _commit(self, tree: str, parent: str) -> str:
        env = {"GIT_AUTHOR_DATE": "@0 +0000", "GIT_COMMITTER_DATE": "@0 +0000",
               "GIT_AUTHOR_NAME": GIT_USER_NAME, "GIT_AUTHOR_EMAIL": GIT_USER_EMAIL,
               "GIT_COMMITTER_NAME": GIT_USER_NAME, "GIT_COMMITTER_EMAIL": GIT_USER_EMAIL}
        return self._git(["commit-tree", tree, "-p", parent, "-m", "snapshot"], extra_env=env).stdout.decode().strip()

    def rebase(self, snapshot: str, onto: str) -> str:
        """The snapshot's changes replayed onto `onto`, as a commit; RebaseConflict if they do not apply."""
        merged = self._git(["merge-tree", "--write-tree", "--no-messages", onto, snapshot], check=False)
        if merged.returncode != 0:
            raise RebaseConflict(merged.stderr.decode(errors="replace").strip() or "conflicting changes")
        return self._commit(merged.stdout.decode().split("\n", 1)[0].strip(), onto)

    def changes(self, old: str, new: str, *, max_file_bytes: int = GITHUB_MAX_FILE_BYTES,
                max_binary_bytes: int = DEFAULT_MAX_BINARY_BYTES) -> Changes:
        """The files that differ between two commits, with their content; ChangesRefused for any we must not commit."""
        entries: list[tuple[str, str, str, str]] = []  # (status, new mode, new sha, path)
        fields = self.git("diff-tree", "-r", "-z", "--no-renames", old, new).split(b"\0")
        for i in range(0, len(fields) - 1, 2):
            meta, path = fields[i].decode(), os.fsdecode(fields[i + 1])
            _old_mode, new_mode, _old_sha, new_sha, status = meta.lstrip(":").split(" ")
            entries.append((status, new_mode, new_sha, path))

        wanted = [sha for status, mode, sha, _path in entries if status != "D" and mode in FILE_MODES]
        blobs = self._read_blobs(wanted) if wanted else {}
        problems: list[tuple[str, str]] = []
        files: list[FileChange] = []
        for status, mode, sha, path in entries:
            if path.startswith(WORKFLOWS_DIR):
                problems.append((path, WORKFLOW_FILE))
            elif status == "D":
                files.append(FileChange(path, "100644", None))
            elif mode not in FILE_MODES:
                problems.append((path, NESTED_REPOSITORY))
            elif problem := content_problem(blobs[sha], max_file_bytes, max_binary_bytes):
                problems.append((path, problem))
            else:
                files.append(FileChange(path, mode, blobs[sha]))
        if problems:
            raise ChangesRefused(problems)
        diff = self.git("diff", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames", old, new)
        return Changes(files=files, diff=diff.decode("utf-8", errors="replace"))

    def changed_paths(self, old: str, new: str) -> list[str]:
        """The paths that differ between two commits, nothing read or judged."""
        out = self.git("diff-tree", "-r", "-z", "--no-renames", "--name-only", old, new)
        return [os.fsdecode(path) for path in out.split(b"\0") if path]

    def _read_blobs(self, shas: list[str]) -> dict[str, bytes]:
        out = self.git("cat-file", "--batch", input=("\n".join(shas) + "\n").encode())
        blobs: dict[str, bytes] = {}
        pos = 0
        while pos < len(out):
            header_end = out.index(b"\n", pos)
            sha, _type, size = out[pos:header_end].decode().split(" ")
            start = header_end + 1
            blobs[sha] = out[start:start + int(size)]
            pos = start + int(size) + 1
        return blobs

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)


def _quote(path: str) -> bytes:
    """A path as fast-import reads it: C-style quoted, so any byte (even a newline) survives."""
    raw = path.encode("utf-8", "surrogateescape")
    out = bytearray(b'"')
    for byte in raw:
        if byte in (0x22, 0x5C):
            out += b"\\" + bytes([byte])
        elif byte < 0x20 or byte == 0x7F:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    return bytes(out + b'"')
