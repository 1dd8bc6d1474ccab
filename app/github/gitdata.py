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


class BaseBranchMissing(Exception):
    """The branch a task should start from does not exist."""

    def __init__(self, branch: str) -> None:
        super().__init__(branch)
        self.branch = branch


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


async def start_commit(gh, owner: str, repo: str, base_branch: str, message: str) -> tuple[str, str]:
    """(base sha, sha of an empty commit on it): what a draft PR starts from before the agent changes anything.

    Same tree as the base, so the PR shows no file changes yet; GitHub refuses a PR with no commits at all.
    Raises BaseBranchMissing when `base_branch` does not exist.
    """
    try:
        branch = (await gh.rest.repos.async_get_branch(owner, repo, base_branch)).json()
    except RequestFailed as exc:
        if exc.response.status_code == 404:
            raise BaseBranchMissing(base_branch) from None
        raise
    base_sha, tree_sha = branch["commit"]["sha"], branch["commit"]["commit"]["tree"]["sha"]
    commit = (await gh.rest.git.async_create_commit(
        owner, repo, data={"message": message, "tree": tree_sha, "parents": [base_sha]})).json()
    return base_sha, commit["sha"]


async def squash(gh, owner: str, repo: str, branch: str, *, head_sha: str, onto_sha: str, message: str) -> str:
    """Replace the commits between `onto_sha` and `head_sha` on `branch` by one commit with head's tree.

    BranchMoved when the branch no longer points at `head_sha`: a person's commit is never rewritten.
    """
    if await branch_head(gh, owner, repo, branch) != head_sha:
        raise BranchMoved(branch)
    tree = (await gh.rest.git.async_get_commit(owner, repo, head_sha)).json()["tree"]["sha"]
    commit = (await gh.rest.git.async_create_commit(
        owner, repo, data={"message": message, "tree": tree, "parents": [onto_sha]})).json()
    # The one forced update Draftsmith makes, on its own commits only (checked just above).
    await gh.rest.git.async_update_ref(owner, repo, f"heads/{branch}", data={"sha": commit["sha"], "force": True})
    return commit["sha"]


async def delete_branch(gh, owner: str, repo: str, branch: str) -> None:
    try:
        await gh.rest.git.async_delete_ref(owner, repo, f"heads/{branch}")
    except RequestFailed as exc:
        if exc.response.status_code != 422:  # 422: already gone
            raise


async def create_branch(gh, owner: str, repo: str, branch: str, sha: str, max_tries: int = 20) -> str:
    """Create `branch` at `sha`; on a name collision try `branch-2`, `branch-3`, ... Returns the name used."""
    for attempt in range(1, max_tries + 1):
        name = branch if attempt == 1 else f"{branch}-{attempt}"
        try:
            await gh.rest.git.async_create_ref(owner, repo, data={"ref": f"refs/heads/{name}", "sha": sha})
            return name
        except RequestFailed as exc:
            # Only a name clash tries the next name; any other 422 (a refused workflow file) is the reason.
            if exc.response.status_code != 422 or "already exists" not in exc.response.text:
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
