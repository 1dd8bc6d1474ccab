"""A task's repository on GitHub as a run reads it: fetched into the run's private repo, one scoped token a fetch."""

from __future__ import annotations

import asyncio

from app.engines.git.private_repo import PrivateRepo

READ_CONTENTS = {"contents": "read"}


class UntrustedCloneURL(ValueError):
    """The repository's clone URL points somewhere other than the configured GitHub: no token goes there."""


class RepositorySource:
    """Fetches branches of one repository into `private`, each with a token for that repository only.

    The token may read contents and nothing else, and is revoked as soon as the fetch ends; the clone
    URL must be on the configured GitHub's git host, so a token is never sent to a host the app did not choose.
    """

    def __init__(self, github, installation_id: int, full_name: str, clone_url: str, private: PrivateRepo) -> None:
        origin = github.git_origin
        if not clone_url.startswith(origin + "/"):
            raise UntrustedCloneURL(f"the clone URL of {full_name} is not on {origin}; refusing to send it a token")
        self.github = github
        self.installation_id = installation_id
        self.full_name = full_name
        self.clone_url = clone_url
        self.private = private

    async def fetch(self, branch: str) -> str:
        """Fetch `branch` into the private repo; returns its head sha."""
        async with self.github.repository_token(self.installation_id, self.full_name, READ_CONTENTS) as token:
            return await asyncio.to_thread(self.private.fetch, self.clone_url, branch, token)
