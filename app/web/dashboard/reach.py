"""What a signed-in person may see: the installations and repositories their user token reaches, cached briefly.

GitHub decides, not us: `GET /user/installations` and `GET /user/installations/{id}/repositories` answer only
what both the person and the App reach, each repository with the person's permissions on it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from app.policy import PERMISSION_ORDER

# As app.handlers.context caches collaborator permissions: a burst of page views costs a few calls, and a
# revoked access shows within a minute. Actions ask GitHub again whatever the cache holds.
REACH_TTL_SECONDS = 60.0
PER_PAGE = 100


@dataclass(frozen=True)
class RepoAccess:
    full_name: str
    installation_id: int
    permission: str  # admin, maintain, write, triage or read
    default_branch: str | None = None

    def at_least(self, level: str) -> bool:
        return PERMISSION_ORDER.index(self.permission) >= PERMISSION_ORDER.index(level)


@dataclass(frozen=True)
class InstallationAccess:
    id: int
    account: str
    account_type: str


@dataclass(frozen=True)
class Reach:
    login: str
    installations: dict[int, InstallationAccess] = field(default_factory=dict)
    repos: dict[str, RepoAccess] = field(default_factory=dict)  # by lower-cased full name

    def repo(self, full_name: str, installation_id: int | None = None) -> RepoAccess | None:
        found = self.repos.get(full_name.lower())
        if found is None or (installation_id is not None and found.installation_id != installation_id):
            return None
        return found

    def scopes(self) -> list[tuple[int, str]]:
        """(installation id, full name) of every repository, for queries."""
        return [(r.installation_id, r.full_name) for r in self.repos.values()]

    def repos_of(self, installation_id: int) -> list[RepoAccess]:
        return sorted((r for r in self.repos.values() if r.installation_id == installation_id),
                      key=lambda r: r.full_name.lower())


def level(permissions: dict | None) -> str:
    """The highest role in a repository's `permissions` object (admin, maintain, push, triage, pull)."""
    permissions = permissions or {}
    for name, role in (("admin", "admin"), ("maintain", "maintain"), ("push", "write"), ("triage", "triage"),
                       ("pull", "read")):
        if permissions.get(name):
            return role
    return "read"


async def _pages(gh, url: str, key: str) -> list[dict]:
    items: list[dict] = []
    page = 1
    while True:
        data = (await gh.arequest("GET", url, params={"per_page": PER_PAGE, "page": page})).json()
        batch = data.get(key) or []
        items.extend(batch)
        if len(batch) < PER_PAGE:
            return items
        page += 1


async def fetch_reach(gh, login: str) -> Reach:
    installations: dict[int, InstallationAccess] = {}
    repos: dict[str, RepoAccess] = {}
    for item in await _pages(gh, "/user/installations", "installations"):
        account = item.get("account") or {}
        installation = InstallationAccess(int(item["id"]), account.get("login", ""), account.get("type", "User"))
        installations[installation.id] = installation
        for repo in await _pages(gh, f"/user/installations/{installation.id}/repositories", "repositories"):
            repos[repo["full_name"].lower()] = RepoAccess(repo["full_name"], installation.id,
                                                          level(repo.get("permissions")), repo.get("default_branch"))
    return Reach(login, installations, repos)


class ReachCache:
    """Reach by user token (hashed: the cache holds no token), for REACH_TTL_SECONDS."""

    def __init__(self, ttl: float = REACH_TTL_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Reach]] = {}

    async def get(self, github_app, token: str, login: str, *, fresh: bool = False) -> Reach:
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._entries.get(key)
        if cached and not fresh and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        reach = await fetch_reach(github_app.user_client(token), login)
        now = time.monotonic()
        self._entries = {k: v for k, v in self._entries.items() if now - v[0] < self.ttl}
        self._entries[key] = (now, reach)
        return reach

    def forget(self, token: str) -> None:
        self._entries.pop(hashlib.sha256(token.encode()).hexdigest(), None)
