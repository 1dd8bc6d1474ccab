"""GitHub App client: RS256 app JWT, cached installation tokens, one githubkit client per installation."""

from __future__ import annotations

import functools
import re
import ssl
import threading
from contextlib import asynccontextmanager, contextmanager
from collections.abc import AsyncGenerator, AsyncIterator, Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import certifi
import httpx
from githubkit import GitHub
from githubkit.auth import AppAuthStrategy, TokenAuthStrategy
from githubkit.auth.base import BaseAuthStrategy
from githubkit.exception import GitHubException, RateLimitExceeded, RequestFailed, RequestTimeout
from githubkit.throttling import BaseThrottler
from githubkit.typing import RetryOption

from app.logs import get_logger
from app.settings import Settings

# Refresh an installation token this long before GitHub says it expires, so a clone or a long
# handler never starts with a token about to lapse (tokens live one hour).
TOKEN_REFRESH_MARGIN = timedelta(minutes=5)


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())


class GitHubNotConfigured(RuntimeError):
    """The app id or private key is missing, so we cannot authenticate as the App."""


@dataclass(frozen=True)
class AppIdentity:
    id: int
    slug: str
    name: str

    @property
    def bot_login(self) -> str:
        # GitHub names an App's bot user after its slug; mentions and assignees use this login.
        return f"{self.slug}[bot]"


class TransientRetry:
    """The one retry policy for GitHub calls: 5xx, timeouts and rate limits; never other 4xx.

    githubkit's default waits 1, 4, 9 s on a 5xx and retries a rate limit once; we want a bounded
    wait we can shorten in tests, and rate limits honoured up to `max_rate_limit_wait`.
    """

    def __init__(
        self,
        max_retries: int = 3,
        base_delay: float = 0.5,
        max_rate_limit_wait: float = 120.0,
    ) -> None:
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_rate_limit_wait = max_rate_limit_wait

    def __call__(self, exc: GitHubException, retry_count: int) -> RetryOption:
        if retry_count >= self.max_retries:
            return RetryOption(False)
        if isinstance(exc, RateLimitExceeded):
            # Secondary limits carry Retry-After, primary ones x-ratelimit-reset; githubkit reads both.
            wait = exc.retry_after.total_seconds()
            if wait > self.max_rate_limit_wait:
                return RetryOption(False)
            return RetryOption(True, timedelta(seconds=max(wait, self.base_delay)))
        if isinstance(exc, RequestTimeout) or (
            isinstance(exc, RequestFailed) and exc.response.status_code >= 500
        ):
            return RetryOption(True, timedelta(seconds=self.base_delay * (2**retry_count)))
        return RetryOption(False)


@dataclass(frozen=True)
class _CachedToken:
    token: str
    expires_at: datetime

    def fresh(self, margin: timedelta) -> bool:
        return self.expires_at - datetime.now(UTC) > margin


_REPOSITORY_PATH = re.compile(r"/repos/([^/]+/[^/]+)")


class _InstallationTokenAuth(httpx.Auth):
    """Puts the installation's cached token on each request, fetching a new one when needed.

    A token reaches the repositories the installation had when it was minted. So a 404 on a repository
    the cached token does not reach (`GET /installation/repositories`, asked once per token) is tried once
    more with a fresh token: the repository was added since, maybe in another process, whose
    `installation_repositories` webhook this one never saw. A 404 on a repository it reaches is real.
    """

    requires_request_body = True  # so the request can be sent again

    def __init__(self, app: GitHubApp, installation_id: int) -> None:
        self.app = app
        self.installation_id = installation_id

    @staticmethod
    def _repository(request: httpx.Request, response: httpx.Response) -> str | None:
        match = _REPOSITORY_PATH.search(request.url.path)
        return match.group(1).lower() if response.status_code == 404 and match else None

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.app.installation_token_sync(self.installation_id)
        request.headers["Authorization"] = f"token {token}"
        response = yield request
        repository = self._repository(request, response)
        if repository and repository not in self.app.reached_by_sync(token):
            self.app.forget_token(self.installation_id, token)
            request.headers["Authorization"] = f"token {self.app.installation_token_sync(self.installation_id)}"
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.app.installation_token(self.installation_id)
        request.headers["Authorization"] = f"token {token}"
        response = yield request
        repository = self._repository(request, response)
        if repository and repository not in await self.app.reached_by(token):
            self.app.forget_token(self.installation_id, token)
            request.headers["Authorization"] = f"token {await self.app.installation_token(self.installation_id)}"
            yield request


@dataclass(frozen=True)
class _InstallationAuthStrategy(BaseAuthStrategy):
    app: GitHubApp
    installation_id: int

    def get_auth_flow(self, github) -> httpx.Auth:
        return _InstallationTokenAuth(self.app, self.installation_id)


class _Unthrottled(BaseThrottler):
    """No client-side concurrency cap.

    githubkit's default LocalThrottler keeps one anyio.Semaphore, and hishel's HTTP cache one lock,
    per client. Our clients are shared by worker threads that each run their own event loop, and a
    loop-bound primitive shared between loops left a waiting handler never woken (a hang seen with
    two worker threads). GitHub limits us server-side anyway; our retry policy handles that.
    """

    @contextmanager
    def acquire(self, request):
        yield

    @asynccontextmanager
    async def async_acquire(self, request):
        yield


class GitHubApp:
    """Authenticates as the App (JWT) and as its installations (cached tokens).

    Safe to share between threads and event loops: githubkit opens a connection per call when the
    client is not used as a context manager, so no client is tied to one loop.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        retry: TransientRetry | None = None,
        timeout: float = 30.0,
        refresh_margin: timedelta = TOKEN_REFRESH_MARGIN,
    ) -> None:
        private_key = settings.private_key_pem()
        if settings.github_app_id is None or not private_key:
            raise GitHubNotConfigured("GITHUB_APP_ID and a private key are needed to act as the App")
        self.app_id = settings.github_app_id
        self.base_url = settings.github_api_url.rstrip("/") + "/"
        self.retry = retry or TransientRetry()
        self.timeout = timeout
        self.refresh_margin = refresh_margin
        self.app_client = self._client(AppAuthStrategy(self.app_id, private_key))
        self._tokens: dict[int, _CachedToken] = {}
        self._reach: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()
        self._clients: dict[int, GitHub] = {}
        self._identity: AppIdentity | None = None

    def _client(self, auth: BaseAuthStrategy) -> GitHub:
        return GitHub(
            auth,
            base_url=self.base_url,
            # githubkit builds an httpx client per call outside `async with`; without a shared SSL
            # context each build loads the CA bundle again (~90 ms measured), dwarfing the call itself.
            ssl_verify=_shared_ssl_context(),
            auto_retry=self.retry,
            timeout=self.timeout,
            user_agent="draftsmith",
            http_cache=False,
            throttler=_Unthrottled(),
        )

    def installation_client(self, installation_id: int) -> GitHub:
        """The client acting as one installation (one per installation, kept)."""
        with self._lock:
            client = self._clients.get(installation_id)
            if client is None:
                client = self._client(_InstallationAuthStrategy(self, installation_id))
                self._clients[installation_id] = client
            return client

    def user_client(self, token: str) -> GitHub:
        """A client acting as a person, with the user access token they signed in with (the dashboard)."""
        return self._client(TokenAuthStrategy(token))

    def _cached(self, installation_id: int) -> str | None:
        with self._lock:
            cached = self._tokens.get(installation_id)
        return cached.token if cached and cached.fresh(self.refresh_margin) else None

    def _store(self, installation_id: int, token: str, expires_at: str) -> str:
        expiry = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=UTC)
        with self._lock:
            self._tokens[installation_id] = _CachedToken(token, expiry)
        return token

    async def installation_token(self, installation_id: int) -> str:
        """An installation access token (also good for `git clone`), cached until near expiry."""
        if token := self._cached(installation_id):
            return token
        response = await self.app_client.arequest(
            "POST", f"/app/installations/{installation_id}/access_tokens", json={}
        )
        data = response.json()
        return self._store(installation_id, data["token"], data["expires_at"])

    def installation_token_sync(self, installation_id: int) -> str:
        """As installation_token(), for synchronous callers (runners, threads without a loop)."""
        if token := self._cached(installation_id):
            return token
        response = self.app_client.request(
            "POST", f"/app/installations/{installation_id}/access_tokens", json={}
        )
        data = response.json()
        return self._store(installation_id, data["token"], data["expires_at"])

    @asynccontextmanager
    async def repository_token(
        self, installation_id: int, full_name: str, permissions: dict[str, str]
    ) -> AsyncIterator[str]:
        """A token for one repository with only `permissions`, revoked when the block ends.

        For what leaves the app's hands (git, a run): a token minted with an empty body reaches every
        repository of the installation with all its permissions; this one is never cached.
        """
        token = await self.scoped_token(installation_id, full_name, permissions)
        try:
            yield token
        finally:
            await self.revoke_token(token)

    async def scoped_token(self, installation_id: int, full_name: str, permissions: dict[str, str]) -> str:
        """A token for one repository with only `permissions`, never cached; it lapses within the hour.

        Whoever takes it revokes it once done (`DELETE /installation/token`): a Kubernetes run's pod does so
        right after its clone.
        """
        name = full_name.split("/", 1)[1]
        response = await self.app_client.arequest(
            "POST", f"/app/installations/{installation_id}/access_tokens",
            json={"repositories": [name], "permissions": permissions},
        )
        return response.json()["token"]

    async def revoke_token(self, token: str) -> None:
        """`DELETE /installation/token`; a failure is logged, as the token lapses within the hour anyway."""
        try:
            await self._client(TokenAuthStrategy(token)).arequest("DELETE", "/installation/token")
        except GitHubException as exc:
            get_logger().warning("token_revoke_failed", error_type=type(exc).__name__)

    @property
    def git_origin(self) -> str:
        """Where this GitHub serves git: github.com for api.github.com, the same host for GHES and fakes."""
        return git_origin(self.base_url)

    def forget_token(self, installation_id: int, token: str | None = None) -> None:
        """Drop a cached token (repositories added, installation deleted); with `token`, only if it is
        still the cached one (another request may have replaced it already)."""
        with self._lock:
            cached = self._tokens.get(installation_id)
            if cached is not None and (token is None or cached.token == token):
                del self._tokens[installation_id]

    async def reached_by(self, token: str) -> frozenset[str]:
        """The repositories (lower-case full names) an installation token reaches, asked once per token."""
        if (known := self._reach.get(token)) is not None:
            return known
        client, names, page = self._client(TokenAuthStrategy(token)), set(), 1
        while True:
            data = (await client.arequest("GET", "/installation/repositories",
                                          params={"per_page": 100, "page": page})).json()
            names.update(repo["full_name"].lower() for repo in data["repositories"])
            if len(data["repositories"]) < 100:
                return self._remember_reach(token, frozenset(names))
            page += 1

    def reached_by_sync(self, token: str) -> frozenset[str]:
        if (known := self._reach.get(token)) is not None:
            return known
        return self._remember_reach(token, frozenset(name.lower() for name in self.token_repositories_sync(token)))

    def token_repositories_sync(self, token: str) -> list[str]:
        """`GET /installation/repositories` with `token`, every page: the full names it reaches."""
        client, names, page = self._client(TokenAuthStrategy(token)), [], 1
        while True:
            data = client.request("GET", "/installation/repositories", params={"per_page": 100, "page": page}).json()
            names += [repo["full_name"] for repo in data["repositories"]]
            if len(data["repositories"]) < 100:
                return names
            page += 1

    def _remember_reach(self, token: str, names: frozenset[str]) -> frozenset[str]:
        with self._lock:
            if len(self._reach) > 100:  # tokens live an hour; keep the newest
                self._reach.pop(next(iter(self._reach)))
            self._reach[token] = names
        return names

    async def identity(self) -> AppIdentity:
        """The App's id, slug and name from `GET /app`, read once and kept."""
        if self._identity is None:
            response = await self.app_client.arequest("GET", "/app")
            self._identity = _identity_from(response.json())
        return self._identity

    def identity_sync(self) -> AppIdentity:
        if self._identity is None:
            response = self.app_client.request("GET", "/app")
            self._identity = _identity_from(response.json())
        return self._identity


def git_origin(api_url: str) -> str:
    """`scheme://host[:port]` that git URLs of the GitHub at `api_url` must start with."""
    parts = httpx.URL(api_url)
    host = parts.host[4:] if parts.host.startswith("api.") else parts.host
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def _identity_from(data: dict) -> AppIdentity:
    return AppIdentity(id=int(data["id"]), slug=str(data["slug"]), name=str(data.get("name") or data["slug"]))

