"""Real git repositories (dulwich) behind the fake: smart HTTP for the git CLI and the Git Data API."""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from dulwich.object_store import commit_tree_changes, tree_lookup_path
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo
from dulwich.server import Backend, BackendRepo
from dulwich.web import make_wsgi_chain

FILE_MODE = 0o100644


@dataclass
class Signature:
    name: str
    email: str
    timestamp: int
    timezone: int = 0

    def raw(self) -> bytes:
        return f"{self.name} <{self.email}>".encode()


def init_repository(git_dir: Path, default_branch: str, files: dict[str, str], author: Signature) -> str:
    """Create a bare repository with one commit holding `files` on `default_branch`; returns its sha."""
    git_dir.mkdir(parents=True, exist_ok=True)
    repo = Repo.init_bare(str(git_dir))
    repo.refs.set_symbolic_ref(b"HEAD", f"refs/heads/{default_branch}".encode())
    changes = []
    for path, text in sorted(files.items()):
        blob = Blob.from_string(text.encode() if isinstance(text, str) else text)
        repo.object_store.add_object(blob)
        changes.append((path.encode(), FILE_MODE, blob.id))
    empty = Tree()
    repo.object_store.add_object(empty)
    tree = commit_tree_changes(repo.object_store, empty.id, changes)
    sha = create_commit(repo, "Initial commit", tree.decode() if isinstance(tree, bytes) else tree, [], author, author)
    repo.refs[f"refs/heads/{default_branch}".encode()] = sha.encode()
    return sha


def copy_repository(source: str | Path, git_dir: Path) -> None:
    """A bare copy with every object and ref of `source`, as a fork starts."""
    import shutil

    git_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, git_dir)


def open_repo(git_dir: str | Path) -> Repo:
    return Repo(str(git_dir))


def resolve_ref(repo: Repo, ref: str) -> str | None:
    """A branch, tag, full ref or (abbreviated) sha to a commit sha, like GitHub's `ref` parameters."""
    candidates = [ref.encode()] if ref.startswith("refs/") else [
        f"refs/heads/{ref}".encode(), f"refs/tags/{ref}".encode()
    ]
    for name in candidates:
        if name in repo.refs:
            return repo.refs[name].decode()
    if 4 <= len(ref) <= 40 and all(c in "0123456789abcdef" for c in ref):
        if len(ref) == 40:
            return ref if ref.encode() in repo.object_store else None
        for sha in repo.object_store:
            if sha.decode().startswith(ref):
                return sha.decode()
    return None


def branch_heads(repo) -> dict[str, str]:
    """Branch name -> sha of a fake Repository (`git_dir`, `heads`), read from disk once and then kept."""
    if repo.heads is None:
        store = open_repo(repo.git_dir)
        repo.heads = {name.decode(): sha.decode() for name, sha in store.refs.as_dict(b"refs/heads").items()}
    return repo.heads


def refs_moved(repo, store: Repo, names: list[str]) -> None:
    """Bring a fake Repository's `heads` up to date with these full ref names as `store` now holds them."""
    if repo.heads is None:
        return
    for name in names:
        if not name.startswith("refs/heads/"):
            continue
        branch = name.removeprefix("refs/heads/")
        try:
            repo.heads[branch] = store.refs[name.encode()].decode()
        except KeyError:
            repo.heads.pop(branch, None)


def pushed_refs(body: bytes) -> list[str] | None:
    """The ref names a receive-pack request body updates (its pkt-line commands), None if unreadable.

    Each command is `<old> <new> <ref>` (the first followed by NUL and capabilities), then a flush-pkt."""
    names, at = [], 0
    try:
        while True:
            size = int(body[at:at + 4], 16)
            if size == 0:
                return names
            line = body[at + 4:at + size].split(b"\0", 1)[0].strip()
            names.append(line.split(b" ")[2].decode())
            at += size
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def read_path(repo: Repo, commit_sha: str, path: str) -> tuple[str, int, bytes] | None:
    """(kind "file"|"dir", mode, sha) of `path` in a commit's tree, or None when absent."""
    commit = repo[commit_sha.encode()]
    if not path.strip("/"):
        return ("dir", stat.S_IFDIR, commit.tree)
    try:
        mode, sha = tree_lookup_path(repo.object_store.__getitem__, commit.tree, path.strip("/").encode())
    except KeyError:
        return None
    return ("dir" if stat.S_ISDIR(mode) else "file", mode, sha)


def create_blob(repo: Repo, data: bytes) -> str:
    blob = Blob.from_string(data)
    repo.object_store.add_object(blob)
    return blob.id.decode()


def create_tree(repo: Repo, base_tree: str | None, entries: list[tuple[str, int, str | None]]) -> str:
    """Apply (path, mode, sha-or-None-to-delete) entries, nested paths allowed, over `base_tree`."""
    if base_tree is None:
        empty = Tree()
        repo.object_store.add_object(empty)
        base = empty.id
    else:
        base = base_tree.encode()
    changes = [(path.encode(), mode, sha.encode() if sha else None) for path, mode, sha in entries]
    result = commit_tree_changes(repo.object_store, base, changes)
    return result.decode() if isinstance(result, bytes) else str(result)


def create_commit(
    repo: Repo, message: str, tree: str, parents: list[str], author: Signature, committer: Signature
) -> str:
    commit = Commit()
    commit.tree = tree.encode()
    commit.parents = [p.encode() for p in parents]
    commit.author = author.raw()
    commit.committer = committer.raw()
    commit.author_time, commit.author_timezone = author.timestamp, author.timezone
    commit.commit_time, commit.commit_timezone = committer.timestamp, committer.timezone
    commit.encoding = b"UTF-8"
    commit.message = message.encode()
    repo.object_store.add_object(commit)
    return commit.id.decode()


def ancestors(repo: Repo, sha: str) -> list[str]:
    """`sha` and everything reachable from it, newest first."""
    return [entry.commit.id.decode() for entry in repo.get_walker(include=[sha.encode()])]


def default_signature(name: str, email: str) -> Signature:
    return Signature(name=name, email=email, timestamp=int(time.time()))


def read_refs(git_dir: str | Path) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """(ref -> sha, symbolic ref -> target) of a bare repository in one pass: packed-refs, loose refs over them."""
    root = Path(git_dir)
    values: dict[bytes, bytes] = {}
    symbolic: dict[bytes, bytes] = {}
    try:
        for line in (root / "packed-refs").read_bytes().splitlines():
            if line and not line.startswith((b"#", b"^")):
                sha, _, name = line.partition(b" ")
                values[name.strip()] = sha
    except FileNotFoundError:
        pass
    prefix = len(str(root)) + 1
    for directory, _dirs, files in os.walk(os.path.join(root, "refs")):
        for file in files:
            if file.endswith(".lock"):
                continue
            path = os.path.join(directory, file)
            try:
                with open(path, "rb") as f:
                    content = f.read().strip()
            except FileNotFoundError:  # deleted since the walk listed it
                continue
            name = path[prefix:].encode()
            if content.startswith(b"ref: "):
                symbolic[name] = content[5:]
            else:
                values[name] = content
    head = (root / "HEAD").read_bytes().strip()
    if head.startswith(b"ref: "):
        symbolic[b"HEAD"] = head[5:]
    else:
        values[b"HEAD"] = head
    for name, target in symbolic.items():
        for _ in range(5):  # as git, follow a few levels of symbolic refs
            if target not in symbolic:
                break
            target = symbolic[target]
        if target in values:
            values[name] = values[target]
    return values, symbolic


class ServedRepo(Repo):
    """A bare repository as the git server serves it: its refs read in one pass, its branches not peeled.

    dulwich reads each loose ref through its general machinery and peels every advertised ref by reading
    its object (is it a tag?); with a thousand branches one advertisement cost ~0.6 s of the fake's CPU,
    and a fetch over smart HTTP advertises twice (info/refs, then upload-pack). A branch names a commit
    (git refuses anything else under refs/heads), so it peels to itself. One request's refs are read once.
    The same fetch then checks each ref's object exists, which dulwich does by parsing it: a stat here.
    """

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self._refs_read: tuple[dict[bytes, bytes], dict[bytes, bytes]] | None = None
        self.refs.get_symrefs = lambda: dict(self._read()[1])  # type: ignore[method-assign]
        # upload-pack checks that every ref's object exists, and dulwich answers that for a loose object
        # by reading and parsing it; as git does, the file being there is enough.
        objects, contains_loose = self.object_store.path, self.object_store.contains_loose

        def loose_object_exists(sha) -> bool:
            if isinstance(sha, bytes) and len(sha) == 40:
                return os.path.exists(os.path.join(objects, sha[:2].decode(), sha[2:].decode()))
            return contains_loose(sha)

        self.object_store.contains_loose = loose_object_exists  # type: ignore[method-assign]

    def _read(self) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
        if self._refs_read is None:
            self._refs_read = read_refs(self.path)
        return self._refs_read

    def get_refs(self):  # type: ignore[override]
        return dict(self._read()[0])

    def get_peeled(self, ref):  # type: ignore[override]
        values = self._read()[0]
        if ref in values and (ref == b"HEAD" or ref.startswith(b"refs/heads/")):
            return values[ref]
        return super().get_peeled(ref)


class StateBackend(Backend):
    """Opens `/<owner>/<name>.git` from the fake's repository table, so repos created later are served."""

    def __init__(self, lookup) -> None:
        self.lookup = lookup

    def open_repository(self, path: str | bytes) -> BackendRepo:
        if isinstance(path, bytes):  # dulwich passes bytes for receive-pack
            path = path.decode()
        git_dir = self.lookup(path.strip("/").removesuffix(".git"))
        if git_dir is None:
            from dulwich.errors import NotGitRepository

            raise NotGitRepository(path)
        return ServedRepo(str(git_dir))  # type: ignore[return-value]


def smart_http_app(lookup):
    """The WSGI app that speaks git's smart HTTP protocol (clone, fetch, push)."""
    return make_wsgi_chain(StateBackend(lookup))
