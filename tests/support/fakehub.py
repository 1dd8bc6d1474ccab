"""Test fixture `fakehub`: a fresh fake GitHub (app/fakehub) served over HTTP on a free loopback port per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from app.fakehub.auth import issue_token
from app.fakehub.background import BackgroundServer
from app.fakehub.hub import FakeHub, generate_private_key
from app.fakehub.server import create_fakehub
from app.fakehub.spec import load
from app.fakehub.state import Delivery, FakeHubState, Fault, RequestRecord, Repository, User

ACCEPT = "application/vnd.github+json"


class FakeHubHandle:
    """What a test holds: URLs and App settings, direct state, and helpers that act like people on GitHub."""

    def __init__(self, hub: FakeHub, server: BackgroundServer, key_dir: Path) -> None:
        self.hub = hub
        self.server = server
        self.api_url = server.url
        self.app_id = hub.app.id
        self.app_slug = hub.app.slug
        self.bot_login = hub.app.bot.login
        self.webhook_secret = hub.app.webhook_secret
        self.private_key_pem = hub.private_key_pem
        self.private_key_path = key_dir / "fakehub-app.pem"
        self.private_key_path.write_bytes(hub.private_key_pem)
        self.private_key_path.chmod(0o600)
        self._clients: list[httpx.Client] = []

    # -- settings ---------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """The four GITHUB_* settings our app needs to talk to this fake."""
        return {
            "GITHUB_APP_ID": str(self.app_id),
            "GITHUB_PRIVATE_KEY_PATH": str(self.private_key_path),
            "GITHUB_WEBHOOK_SECRET": self.webhook_secret,
            "GITHUB_API_URL": self.api_url,
        }

    def oauth_env(self) -> dict[str, str]:
        """The App's OAuth client id and secret, for signing in to the dashboard through this fake."""
        from app.fakehub.oauth import client_credentials

        client_id, client_secret = client_credentials(self.hub)
        return {"GITHUB_CLIENT_ID": client_id, "GITHUB_CLIENT_SECRET": client_secret}

    @property
    def webhook_url(self) -> str | None:
        return self.hub.state.webhook_url

    @webhook_url.setter
    def webhook_url(self, url: str | None) -> None:
        self.hub.state.webhook_url = url

    @property
    def state(self) -> FakeHubState:
        return self.hub.state

    # -- setting the scene --------------------------------------------------------------------------
    def create_repo(self, owner: str, name: str, files: dict[str, str] | None = None, default_branch: str = "main",
                    private: bool = False, install: bool = True) -> str:
        """A repository with one commit of `files`, the App installed; returns its clone URL (no credentials)."""
        self.hub.create_repo(owner, name, files, default_branch, private=private, install=install)
        return f"{self.api_url}/{owner}/{name}.git"

    def add_user(self, login: str, type: str = "User", permissions: dict[str, str] | None = None) -> User:
        return self.hub.add_user(login, type, permissions)

    def repo(self, full_name: str) -> Repository:
        return self.hub.state.repos[full_name]

    def installation_id(self, full_name: str) -> int:
        installation = self.hub.state.installation_for(full_name)
        assert installation is not None, f"the App is not installed on {full_name}"
        return installation.id

    def installation_token(self, full_name: str) -> str:
        """A valid `ghs_` token for the installation covering `full_name` (as our app would obtain)."""
        installation = self.hub.state.installations[self.installation_id(full_name)]
        with self.hub.state.lock:
            return issue_token(self.hub.state, installation, None).token

    def authenticated_clone_url(self, full_name: str, token: str | None = None) -> str:
        token = token or self.installation_token(full_name)
        return self.api_url.replace("://", f"://x-access-token:{token}@", 1) + f"/{full_name}.git"

    def as_user(self, login: str) -> httpx.Client:
        """An httpx client whose REST calls act as `login` (header X-Fakehub-Actor, no token)."""
        client = httpx.Client(base_url=self.api_url, headers={"X-Fakehub-Actor": login, "Accept": ACCEPT}, timeout=30)
        self._clients.append(client)
        return client

    def as_app(self, full_name: str) -> httpx.Client:
        """An httpx client authenticated with an installation token for `full_name`'s installation."""
        token = self.installation_token(full_name)
        client = httpx.Client(base_url=self.api_url, headers={"Authorization": f"token {token}", "Accept": ACCEPT}, timeout=30)
        self._clients.append(client)
        return client

    # -- people doing things (through HTTP, so the fake sends the webhooks GitHub would) -------------
    def _ok(self, response: httpx.Response) -> Any:
        assert response.status_code < 300, f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def open_issue(self, repo: str, title: str, body: str = "", as_user: str = "alice") -> int:
        return self._ok(self.as_user(as_user).post(f"/repos/{repo}/issues", json={"title": title, "body": body}))["number"]

    def open_pull(self, repo: str, head: str, title: str, body: str = "", base: str = "main",
                  as_user: str = "alice", draft: bool = False) -> int:
        return self._ok(self.as_user(as_user).post(f"/repos/{repo}/pulls", json={
            "title": title, "body": body, "head": head, "base": base, "draft": draft}))["number"]

    def run_ci(self, repo: str, head_sha: str, jobs: list[dict], **extra) -> dict:
        """Another app's CI (GitHub Actions by default) finishing on `head_sha`: jobs are
        {name, conclusion, log?, title?, summary?}; sends check_run and check_suite `completed`."""
        return self._ok(httpx.post(f"{self.api_url}/_fakehub/repos/{repo}/ci",
                                   json={"head_sha": head_sha, "jobs": jobs, **extra}, timeout=30))

    def fork(self, repo: str, owner: str) -> str:
        """`owner`'s fork of `repo` (its git directory is a plain bare repository tests may push to)."""
        return self.hub.fork_repo(repo, owner).full_name

    def comment(self, repo: str, number: int, body: str, as_user: str = "alice") -> int:
        return self._ok(self.as_user(as_user).post(f"/repos/{repo}/issues/{number}/comments", json={"body": body}))["id"]

    def edit_comment(self, repo: str, comment_id: int, body: str, as_user: str = "alice") -> None:
        self._ok(self.as_user(as_user).patch(f"/repos/{repo}/issues/comments/{comment_id}", json={"body": body}))

    def assign(self, repo: str, number: int, login: str, as_user: str = "alice") -> None:
        self._ok(self.as_user(as_user).post(f"/repos/{repo}/issues/{number}/assignees", json={"assignees": [login]}))

    def unassign(self, repo: str, number: int, login: str, as_user: str = "alice") -> None:
        self._ok(self.as_user(as_user).request("DELETE", f"/repos/{repo}/issues/{number}/assignees",
                                               json={"assignees": [login]}))

    def label(self, repo: str, number: int, name: str, as_user: str = "alice") -> None:
        self._ok(self.as_user(as_user).post(f"/repos/{repo}/issues/{number}/labels", json={"labels": [name]}))

    def review(self, repo: str, number: int, body: str, event: str = "COMMENT", comments: list[dict] | None = None,
               as_user: str = "alice") -> int:
        payload: dict[str, Any] = {"body": body, "event": event}
        if comments:
            payload["comments"] = comments
        return self._ok(self.as_user(as_user).post(f"/repos/{repo}/pulls/{number}/reviews", json=payload))["id"]

    def rerequest_check_run(self, check_run_id: int, as_user: str = "alice") -> None:
        self._ok(self.as_user(as_user).post(f"/_fakehub/check-runs/{check_run_id}/rerequest"))

    def request_check_run_action(self, check_run_id: int, identifier: str, as_user: str = "alice") -> None:
        self._ok(self.as_user(as_user).post(f"/_fakehub/check-runs/{check_run_id}/request-action",
                                            json={"identifier": identifier}))

    def send_installation_created(self, account: str | None = None) -> None:
        self._ok(httpx.post(f"{self.api_url}/_fakehub/installations", json={"account": account} if account else {}))

    # -- what happened --------------------------------------------------------------------------------
    def requests(self) -> list[RequestRecord]:
        return list(self.hub.state.requests)

    def deliveries(self, event: str | None = None, action: str | None = None) -> list[Delivery]:
        return [d for d in list(self.hub.state.deliveries)
                if (event is None or d.event == event) and (action is None or d.action == action)]

    def fault(self, path: str, status: int = 502, method: str = "*", count: int = 1, retry_after: int | None = None,
              hang: float | None = None) -> None:
        """The next `count` matching API calls fail with `status` (or hang `hang` seconds first)."""
        with self.hub.state.lock:
            self.hub.state.faults.append(Fault(method=method, path=path, status=0 if hang and status == 502 else status,
                                               count=count, retry_after=retry_after, hang=hang))

    def close(self) -> None:
        for client in self._clients:
            client.close()


_private_key: bytes | None = None


def _shared_private_key() -> bytes:
    # RSA generation costs ~0.1 s; one key per test session keeps the fixture cheap.
    global _private_key
    if _private_key is None:
        _private_key = generate_private_key()
    return _private_key


@pytest.fixture(scope="session")
def fakehub_spec() -> None:
    """Parse GitHub's OpenAPI description once per session (npm-installed on first use)."""
    load()


@pytest.fixture
def fakehub(fakehub_spec, tmp_path_factory) -> Iterator[FakeHubHandle]:
    """A fresh fake GitHub on a free 127.0.0.1 port, torn down after the test."""
    key_dir = tmp_path_factory.mktemp("fakehub")
    hub = FakeHub(private_key_pem=_shared_private_key(), git_root=key_dir / "git")
    server = BackgroundServer(create_fakehub(hub)).start()
    handle = FakeHubHandle(hub, server, key_dir)
    try:
        yield handle
    finally:
        handle.close()
        server.stop()
        hub.close()
