"""The App's installations by name: which one covers an owner or a repository, and what each reaches (reads only)."""

from __future__ import annotations

from dataclasses import dataclass, field

from githubkit.exception import RequestFailed


class NoInstallation(LookupError):
    """The App is not installed where asked."""


@dataclass(frozen=True)
class InstallationSummary:
    id: int
    account: str
    account_type: str  # "User" | "Organization"
    repositories: list[str] = field(default_factory=list)


def find_installation(app, owner: str, repo: str | None = None) -> InstallationSummary:
    """The installation covering `owner/repo`, or the one on account `owner` (an organisation or a user)."""
    paths = [f"/repos/{owner}/{repo}/installation"] if repo else [f"/orgs/{owner}/installation",
                                                                 f"/users/{owner}/installation"]
    for path in paths:
        try:
            data = app.app_client.request("GET", path).json()
        except RequestFailed as exc:
            if exc.response.status_code == 404:
                continue
            raise
        return _summary(data)
    where = f"{owner}/{repo}" if repo else owner
    raise NoInstallation(f"the App is not installed on {where}: install it there first (its page on GitHub, "
                         f"Install App), or check the name")


def list_installations(app, with_repositories: bool = True) -> list[InstallationSummary]:
    found, page = [], 1
    while True:
        batch = app.app_client.request("GET", "/app/installations", params={"per_page": 100, "page": page}).json()
        found += [_summary(data) for data in batch]
        if len(batch) < 100:
            break
        page += 1
    if not with_repositories:
        return found
    return [InstallationSummary(i.id, i.account, i.account_type, _repositories(app, i.id)) for i in found]


def _repositories(app, installation_id: int) -> list[str]:
    return sorted(app.token_repositories_sync(app.installation_token_sync(installation_id)))


def _summary(data: dict) -> InstallationSummary:
    account = data.get("account") or {}
    return InstallationSummary(int(data["id"]), account.get("login", "?"), account.get("type", "User"))
