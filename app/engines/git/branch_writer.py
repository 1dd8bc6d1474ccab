"""Pushes snapshots of the agent's workspace onto the task's branch, as Verified commits, never force-pushed.

Each snapshot lives in the run's private repo; its changes since the last push become one commit made
through GitHub's Git Data API. A branch a person moved meanwhile gets our changes on top of theirs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from app.engines.git.changes import Changes
from app.engines.git.private_repo import GitError
from app.engines.git.source import RepositorySource
from app.github import gitdata, render

# A person pushing again and again while we push: give up rather than loop.
MAX_MOVES = 3


class BranchKeepsMoving(Exception):
    """The branch moved under every push we tried."""


@dataclass(frozen=True)
class Pushed:
    sha: str
    changes: Changes


class BranchWriter:
    """The task's branch as seen from one run: `local` (a private-repo commit) has the tree of `remote`
    (the branch head on GitHub) after every push."""

    def __init__(self, gh, source: RepositorySource, branch: str, head_sha: str,
                 log: Callable[[str], None] = lambda text: None) -> None:
        self.gh = gh
        self.source = source
        self.owner, self.repo = source.full_name.split("/", 1)
        self.branch = branch
        self.start = head_sha
        self.local = head_sha
        self.remote = head_sha
        self.others_pushed = False  # a person's commits are on the branch: never squash them away
        self.commits = 0
        self.log = log
        self._lock = asyncio.Lock()

    async def push(self, snapshot: str, message: str | Callable[[Changes], str]) -> Pushed | None:
        """Commit the snapshot's changes since the last push; None when there is nothing new.

        `message` may be a function of the changes (a checkpoint says how many files it holds).

        Raises RebaseConflict when a person's commits on the branch conflict with the agent's changes.
        """
        async with self._lock:
            private = self.source.private
            for _ in range(MAX_MOVES):
                changes = await asyncio.to_thread(private.changes, self.local, snapshot)
                if not changes.files:
                    return None
                text = message(changes) if callable(message) else message
                sha = await gitdata.create_commit(self.gh, self.owner, self.repo, parent_sha=self.remote,
                                                  changes=changes.files, message=text)
                try:
                    await gitdata.move_branch(self.gh, self.owner, self.repo, self.branch, sha)
                except gitdata.BranchMoved:
                    # Someone pushed: replay our snapshot onto their head and commit on top of it.
                    onto = await self.source.fetch(self.branch)
                    self.log(f"{self.branch} moved to {onto[:7]} while the agent worked; its changes go on top")
                    snapshot = await asyncio.to_thread(private.rebase, snapshot, onto)
                    self.local = self.remote = onto
                    self.others_pushed = True
                    continue
                self.local, self.remote = snapshot, sha
                self.commits += 1
                return Pushed(sha, changes)
            raise BranchKeepsMoving(self.branch)

    async def squash(self, onto: str, message: str) -> str | None:
        """Fold this run's commits (since `onto`) into one; None when there is nothing to fold or a person
        pushed to the branch (their commits stay as they are)."""
        async with self._lock:
            if self.others_pushed or self.commits == 0:
                return None
            try:
                sha = await gitdata.squash(self.gh, self.owner, self.repo, self.branch, head_sha=self.remote,
                                           onto_sha=onto, message=message)
            except gitdata.BranchMoved:
                return None
            self.remote = sha
            return sha

    def files_against(self, base: str) -> list[str] | None:
        """The paths the branch changes against `base` as of the last push (or the run's start); None
        when `base` is not in the private repo."""
        try:
            return self.source.private.changed_paths(base, self.local)
        except GitError:
            return None

    def pr_files(self, task) -> list[str]:
        """What the PR changes as of the last push: against the base for a draft Draftsmith opened, else
        (a PR someone else opened) what this run changed."""
        if render.owns_pr(task) and task.base_sha:
            files = self.files_against(task.base_sha)
            if files is not None:
                return files
        return self.files_against(self.start) or []
