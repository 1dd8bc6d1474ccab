"""Authenticates requests the way GitHub does: App JWTs, installation tokens, or a test's X-Fakehub-Actor."""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

import jwt

from app.fakehub.state import FakeHubState, Installation, Token, User, now

TOKEN_LIFETIME = timedelta(hours=1)
# GitHub refuses App JWTs whose exp is more than 10 minutes ahead (it allows a little clock drift).
MAX_JWT_LIFETIME = 600
CLOCK_DRIFT = 60
DOCS = "https://docs.github.com/rest"


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Principal:
    """Who a request acts as: the App itself, an installation (its bot user), or a person."""

    kind: str  # "app" | "installation" | "user"
    user: User | None = None
    installation: Installation | None = None
    token: Token | None = None

    def may_access(self, full_name: str) -> bool:
        if self.kind == "installation":
            assert self.token is not None
            return full_name in self.token.repos
        return True


def credential(authorization: str | None) -> str | None:
    """The credential in `Authorization: token X` or `Authorization: Bearer X`."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return None


def verify_app_jwt(state: FakeHubState, token: str | None) -> Principal:
    app = state.app
    assert app is not None
    if token is None:
        raise AuthError(401, "A JSON web token could not be decoded")
    try:
        claims = jwt.decode(
            token, app.public_key_pem, algorithms=["RS256"],
            options={"require": ["iat", "exp", "iss"], "verify_iat": False, "verify_exp": False},
        )
    except jwt.PyJWTError:
        raise AuthError(401, "A JSON web token could not be decoded") from None
    current = time.time()
    if str(claims["iss"]) not in (str(app.id), app.client_id):
        raise AuthError(401, "'Issuer' claim ('iss') must be an Integer")
    if not isinstance(claims["exp"], (int, float)) or claims["exp"] <= current:
        raise AuthError(
            401,
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which "
            "the assertion expires",
        )
    if claims["exp"] > current + MAX_JWT_LIFETIME + CLOCK_DRIFT:
        raise AuthError(401, "'Expiration time' claim ('exp') is too far in the future")
    if not isinstance(claims["iat"], (int, float)) or claims["iat"] > current + CLOCK_DRIFT:
        raise AuthError(401, "'Issued at' claim ('iat') must be an Integer representing a time in the past")
    return Principal(kind="app", user=None)


def issue_token(state: FakeHubState, installation: Installation, repositories: list[str] | None,
                permissions: dict[str, str] | None = None) -> Token:
    """A fresh `ghs_` token for `installation`, optionally narrowed to some repositories and permissions.

    As on GitHub, a token asked for no permissions gets all of the installation's, and every token may
    read metadata.
    """
    from app.fakehub.payloads import APP_PERMISSIONS

    repos = set(installation.repos) if not repositories else set(repositories)
    granted = dict(permissions) if permissions else dict(APP_PERMISSIONS)
    granted.setdefault("metadata", "read")
    token = Token(
        token="ghs_" + secrets.token_urlsafe(27).replace("-", "a").replace("_", "b")[:36],
        installation_id=installation.id,
        expires_at=now() + TOKEN_LIFETIME,
        repos=repos,
        permissions=granted,
    )
    state.tokens[token.token] = token
    return token


_LEVELS = {"read": 1, "write": 2, "admin": 3}


def permissions_exceed(asked: dict[str, str], granted: dict[str, str]) -> bool:
    """Whether `asked` wants a permission, or a level of one, the installation was not granted."""
    return any(_LEVELS.get(level, 99) > _LEVELS.get(granted.get(name, ""), 0) for name, level in asked.items())


# Which of a token's permissions each REST route needs, by template prefix (GitHub's "Permissions required"
# on each endpoint's docs page). Reads need `read`; anything else needs `write`.
_ROUTE_PERMISSIONS = (
    ("/repos/{owner}/{repo}/check-runs", "checks"),
    ("/repos/{owner}/{repo}/commits/{ref}/check-runs", "checks"),
    ("/repos/{owner}/{repo}/check-suites", "checks"),
    ("/repos/{owner}/{repo}/commits/{ref}/check-suites", "checks"),
    ("/repos/{owner}/{repo}/actions/", "actions"),
    ("/repos/{owner}/{repo}/pulls", "pull_requests"),
    ("/repos/{owner}/{repo}/issues", "issues"),
    ("/repos/{owner}/{repo}/contents/", "contents"),
    ("/repos/{owner}/{repo}/git/", "contents"),
    ("/repos/{owner}/{repo}/commits/", "contents"),
    ("/repos/{owner}/{repo}/branches/", "contents"),
    ("/repos/{owner}/{repo}/compare/", "contents"),
    ("/repos/{owner}/{repo}/dispatches", "contents"),
)


def required_permission(template: str, method: str) -> tuple[str, str] | None:
    """(permission, level) an installation token needs for a route, or None when metadata suffices."""
    level = "read" if method.upper() in ("GET", "HEAD") else "write"
    for prefix, name in _ROUTE_PERMISSIONS:
        if template.startswith(prefix):
            return (name, level)
    return None


def token_permits(token: Token, template: str, method: str) -> bool:
    needed = required_permission(template, method)
    if needed is None:
        return True
    name, level = needed
    held = _LEVELS.get(token.permissions.get(name, ""), 0)
    if name == "issues":  # issue routes serve pull requests too (they share numbers): either will do
        held = max(held, _LEVELS.get(token.permissions.get("pull_requests", ""), 0))
    return held >= _LEVELS[level]


def needs_app_jwt(template: str) -> bool:
    """Routes GitHub serves only to the App itself (signed JWT), not to installations or people."""
    return template == "/app" or template.startswith("/app/") or template in (
        "/repos/{owner}/{repo}/installation", "/orgs/{org}/installation", "/users/{username}/installation",
    )


# Routes GitHub serves to anyone: the manifest flow's code is itself the credential (app.fakehub.manifests).
UNAUTHENTICATED = {"/app-manifests/{code}/conversions"}


def authenticate(state: FakeHubState, template: str, headers) -> Principal:
    """The principal a request acts as; raises AuthError with GitHub's status and message."""
    if template.startswith("/applications/{client_id}/"):  # the App's OAuth client, with Basic credentials
        return _oauth_client(state, headers.get("authorization"))
    token = credential(headers.get("authorization"))
    if template in UNAUTHENTICATED:
        return Principal(kind="anonymous")
    if needs_app_jwt(template):
        return verify_app_jwt(state, token)
    actor = headers.get("x-fakehub-actor")
    if actor and token is None:
        return Principal(kind="user", user=state.user(actor))
    if token is None:
        raise AuthError(401, "Requires authentication")
    if token.startswith("ghu_"):  # a user access token (app.fakehub.oauth)
        person = state.user_tokens.get(token)
        if person is None or not person.live:
            raise AuthError(401, "Bad credentials")
        return Principal(kind="user", user=person.user)
    issued = state.tokens.get(token)
    if issued is None or not issued.live:
        raise AuthError(401, "Bad credentials")
    installation = state.installations[issued.installation_id]
    assert state.app is not None
    return Principal(kind="installation", user=state.app.bot, installation=installation, token=issued)


def _oauth_client(state: FakeHubState, authorization: str | None) -> Principal:
    scheme, _, value = (authorization or "").partition(" ")
    try:
        client_id, _, secret = base64.b64decode(value).decode().partition(":")
    except ValueError:
        client_id, secret = "", ""
    app = state.app
    if scheme.lower() != "basic" or app is None or client_id != app.client_id or not secrets.compare_digest(
            secret, app.client_secret):
        raise AuthError(404, "Not Found")  # GitHub answers 404 to wrong client credentials here
    return Principal(kind="app", user=None)


def git_access(state: FakeHubState, token: str | None, full_name: str, write: bool) -> int:
    """The HTTP status git gets for `x-access-token:<token>` on `full_name`: 200, 401, 403 or 404."""
    issued = state.tokens.get(token or "")
    if issued is None or not issued.live:
        return 401
    if full_name not in issued.repos:
        return 404
    held = _LEVELS.get(issued.permissions.get("contents", ""), 0)
    return 200 if held >= _LEVELS["write" if write else "read"] else 403
