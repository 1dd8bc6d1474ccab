"""Commits made through GitHub's Git Data API (blobs, tree, commit, ref) so GitHub signs them as the App."""

from __future__ import annotations

import base64
import re
import unicodedata
from dataclasses import dataclass

from githubkit.exception import RequestFailed

# Mirrors app.engines.git.changes.FileChange's shape; duck-typed so this module needs nothing from runners.
# path: str, mode: "100644" | "100755" | "120000", content: bytes | None (None = deleted)


class BranchMoved(Exception):
    """The branch no longer points where we expected: someone else pushed."""


@dataclass(frozen=True)
class Commit:
    sha: str
    branch: str


def branch_name(prefix: str, issue_number: int, title: str, max_slug: int = 40) -> str:
    """`<prefix>/issue-<n>-<slug-of-title>`, safe for git refs."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")[:max_slug].rstrip("-")
    name = f"issue-{issue_number}" + (f"-{slug}" if slug else "")
    return f"{prefix.strip('/')}/{name}" if prefix else name


async def _blob(gh, owner: str, repo: str, content: bytes) -> str:
    try:
        data = {"content": content.decode("utf-8"), "encoding": "utf-8"}
    except UnicodeDecodeError:
        data = {"content": base64.b64encode(content).decode(), "encoding": "base64"}
    resp = await gh.rest.git.async_create_blob(owner, repo, data=data)
    return resp.json()["sha"]


async def create_commit(gh, owner: str, repo: str, *, parent_sha: str, changes, message: str) -> str:
    """Create a commit on top of `parent_sha` holding `changes`; returns its sha (no ref moves)."""
    parent = (await gh.rest.git.async_get_commit(owner, repo, parent_sha)).json()
    tree = []
    for change in changes:
        if change.content is None:
            tree.append({"path": change.path, "mode": change.mode, "type": "blob", "sha": None})
        else:
            sha = await _blob(gh, owner, repo, change.content)
            tree.append({"path": change.path, "mode": change.mode, "type": "blob", "sha": sha})
    new_tree = (
        await gh.rest.git.async_create_tree(owner, repo, data={"base_tree": parent["tree"]["sha"], "tree": tree})
    ).json()
    # No author or committer: GitHub then authors the commit as the App's bot and signs it (Verified).
    commit = (
        await gh.rest.git.async_create_commit(
            owner, repo, data={"message": message, "tree": new_tree["sha"], "parents": [parent_sha]}
        )
    ).json()
    return commit["sha"]


async def create_branch(gh, owner: str, repo: str, branch: str, sha: str, max_tries: int = 20) -> str:
    """Create `branch` at `sha`; on a name collision try `branch-2`, `branch-3`, ... Returns the name used."""
    for attempt in range(1, max_tries + 1):
        name = branch if attempt == 1 else f"{branch}-{attempt}"
        try:
            await gh.rest.git.async_create_ref(owner, repo, data={"ref": f"refs/heads/{name}", "sha": sha})
            return name
        except RequestFailed as exc:
            if exc.response.status_code != 422:  # 422: "Reference already exists"
                raise
    raise RuntimeError(f"no free branch name after {max_tries} tries for {branch}")


async def move_branch(gh, owner: str, repo: str, branch: str, sha: str) -> None:
    """Fast-forward `branch` to `sha`; BranchMoved if that is not a fast-forward (someone pushed)."""
    try:
        await gh.rest.git.async_update_ref(owner, repo, f"heads/{branch}", data={"sha": sha, "force": False})
    except RequestFailed as exc:
        if exc.response.status_code == 422:
            raise BranchMoved(branch) from None
        raise


async def branch_head(gh, owner: str, repo: str, branch: str) -> str | None:
    try:
        resp = await gh.rest.git.async_get_ref(owner, repo, f"heads/{branch}")
    except RequestFailed as exc:
        if exc.response.status_code == 404:
            return None
        raise
    return resp.json()["object"]["sha"]
