"""Authenticates requests the way GitHub does: App JWTs, installation tokens, or a test's X-Fakehub-Actor."""

from __future__ import annotations

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


def issue_token(state: FakeHubState, installation: Installation, repositories: list[str] | None) -> Token:
    """A fresh `ghs_` token for `installation`, optionally narrowed to some of its repositories."""
    repos = set(installation.repos) if not repositories else set(repositories)
    token = Token(
        token="ghs_" + secrets.token_urlsafe(27).replace("-", "a").replace("_", "b")[:36],
        installation_id=installation.id,
        expires_at=now() + TOKEN_LIFETIME,
        repos=repos,
    )
    state.tokens[token.token] = token
    return token


def needs_app_jwt(template: str) -> bool:
    """Routes GitHub serves only to the App itself (signed JWT), not to installations or people."""
    return template == "/app" or template.startswith("/app/") or template in (
        "/repos/{owner}/{repo}/installation", "/orgs/{org}/installation", "/users/{username}/installation",
    )


def authenticate(state: FakeHubState, template: str, headers) -> Principal:
    """The principal a request acts as; raises AuthError with GitHub's status and message."""
    token = credential(headers.get("authorization"))
    if needs_app_jwt(template):
        return verify_app_jwt(state, token)
    actor = headers.get("x-fakehub-actor")
    if actor and token is None:
        return Principal(kind="user", user=state.user(actor))
    if token is None:
        raise AuthError(401, "Requires authentication")
    issued = state.tokens.get(token)
    if issued is None or issued.expires_at <= now():
        raise AuthError(401, "Bad credentials")
    installation = state.installations[issued.installation_id]
    assert state.app is not None
    return Principal(kind="installation", user=state.app.bot, installation=installation, token=issued)


def git_token_allows(state: FakeHubState, token: str | None, full_name: str) -> bool:
    """Whether `x-access-token:<token>` may clone and push `full_name`."""
    issued = state.tokens.get(token or "")
    return issued is not None and issued.expires_at > now() and full_name in issued.repos
