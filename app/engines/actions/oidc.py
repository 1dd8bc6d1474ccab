"""Verify GitHub Actions OIDC tokens: signature against the issuer's JWKS, audience, issuer, time, repository."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
GITHUB_COM_API_HOSTS = {"api.github.com"}
# GitHub signs Actions tokens with RS256 only; accepting anything else would let a token choose its own
# check (alg "none", or HS256 keyed with our public key).
ALGORITHMS = ["RS256"]


def issuer_for(api_url: str) -> str:
    """The Actions OIDC issuer for a GitHub API URL: GitHub.com's, or a GHES host's `/_services/token`."""
    parts = urlsplit(api_url)
    if (parts.hostname or "").lower() in GITHUB_COM_API_HOSTS:
        return GITHUB_ACTIONS_ISSUER
    return f"{parts.scheme or 'https'}://{parts.netloc}/_services/token"


class OIDCError(Exception):
    """The token was refused; `reason` says why, `status` is the HTTP answer it deserves (401 or 403)."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class OIDCVerifier:
    """Checks tokens minted by `issuer` (GitHub's, or a GHES `https://HOST/_services/token`) for `audience`.

    Keys are fetched from `<issuer>/.well-known/openid-configuration` -> `jwks_uri` and cached; a token
    signed with a key id we do not know triggers one refetch (GitHub rotates keys), at most every
    `min_refresh_seconds`, so a flood of made-up key ids cannot turn us into a JWKS download loop.
    """

    def __init__(
        self,
        audience: str,
        *,
        issuer: str = GITHUB_ACTIONS_ISSUER,
        http: httpx.AsyncClient | None = None,
        leeway_seconds: float = 60,
        min_refresh_seconds: float = 30,
    ) -> None:
        self.audience = audience
        self.issuer = issuer.rstrip("/")
        self._http = http
        self.leeway = leeway_seconds
        self.min_refresh = min_refresh_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def verify(self, token: str, *, repository: str) -> dict[str, Any]:
        """Return the claims of a valid token from a workflow in `repository` ("owner/name"), or raise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise OIDCError(f"not a JWT: {exc}") from None
        if header.get("alg") not in ALGORITHMS:
            raise OIDCError(f"algorithm {header.get('alg')!r} is not accepted (RS256 only)")
        kid = header.get("kid")
        if not kid:
            raise OIDCError("token has no key id")
        key = await self._key(kid)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "repository"]},
            )
        except jwt.InvalidAudienceError:
            raise OIDCError("token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise OIDCError("token is from another issuer") from None
        except jwt.ExpiredSignatureError:
            raise OIDCError("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise OIDCError("token is not valid yet") from None
        except jwt.InvalidSignatureError:
            raise OIDCError("signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise OIDCError(f"token refused: {exc}") from None
        # Repository names are case-insensitive on GitHub.
        if str(claims["repository"]).lower() != repository.lower():
            raise OIDCError(f"token is for repository {claims['repository']}, not {repository}", status=403)
        return claims

    async def _key(self, kid: str) -> jwt.PyJWK:
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if kid not in self._keys and self._may_refresh():
                await self._refresh()
        if kid not in self._keys:
            raise OIDCError("token is signed with a key the issuer does not publish")
        return self._keys[kid]

    def _may_refresh(self) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at >= self.min_refresh

    async def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        http = self._http or httpx.AsyncClient(timeout=10)
        try:
            discovery = await self._get_json(http, f"{self.issuer}/.well-known/openid-configuration")
            jwks = await self._get_json(http, discovery["jwks_uri"])
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise OIDCError(f"could not fetch the issuer's keys: {exc}", status=503) from None
        finally:
            if self._http is None:
                await http.aclose()
        keys: dict[str, jwt.PyJWK] = {}
        for entry in jwks.get("keys", []):
            try:
                key = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                continue  # a key type we do not use (GitHub only publishes RSA keys today)
            if key.key_id:
                keys[key.key_id] = key
        self._keys = keys

    @staticmethod
    async def _get_json(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
        response = await http.get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        return json.loads(response.content)
