"""A stand-in for GitHub's Actions OIDC issuer: an RSA key, its JWKS, and tokens signed with it."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


_KEYS: list = []


def rsa_key(index: int):
    """Test RSA keys, generated once per session (2048-bit generation takes ~50 ms each)."""
    while len(_KEYS) <= index:
        _KEYS.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _KEYS[index]


def forged_key():
    """A key no issuer publishes."""
    return rsa_key(9)


class FakeIssuer:
    """Publishes `/.well-known/openid-configuration` and `/jwks`, and mints tokens like GitHub does.

    It also answers the runner's token request (`ACTIONS_ID_TOKEN_REQUEST_URL`) at `/token`.
    """

    def __init__(self, issuer: str = "https://token.actions.example.test") -> None:
        self.issuer = issuer
        self.kid = "key-" + uuid.uuid4().hex[:8]
        self.key = rsa_key(0)
        self.published: list[tuple[str, Any]] = [(self.kid, self.key)]
        self.jwks_fetches = 0
        self.request_token = "actions-request-token"
        self.token_claims: dict[str, Any] = {}
        self.token_requests = 0

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.published:
            entry = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            entry.update(kid=kid, use="sig", alg="RS256")
            keys.append(entry)
        return {"keys": keys}

    def rotate(self) -> None:
        """Publish a new key and sign with it from now on (GitHub rotates its keys)."""
        self.kid = "key-" + uuid.uuid4().hex[:8]
        self.key = rsa_key(len(self.published))
        self.published.append((self.kid, self.key))

    def token(self, *, key=None, kid: str | None = None, alg: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": "https://draftsmith.example.test",
            "sub": "repo:octo/demo:ref:refs/heads/main",
            "repository": "octo/demo",
            "repository_owner": "octo",
            "event_name": "repository_dispatch",
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        body.update(self.token_claims)
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        if alg == "none":
            return jwt.encode(body, None, algorithm="none", headers={"kid": kid or self.kid})
        return jwt.encode(body, key or self.key, algorithm=alg, headers={"kid": kid or self.kid})

    def asgi(self, base_url: str = "") -> Starlette:
        async def discovery(request: Request) -> JSONResponse:
            return JSONResponse({"issuer": self.issuer, "jwks_uri": f"{base_url or self.issuer}/jwks"})

        async def jwks(request: Request) -> JSONResponse:
            self.jwks_fetches += 1
            return JSONResponse(self.jwks())

        async def token(request: Request) -> JSONResponse:
            # GitHub's runner API: GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=... with the request token.
            if request.headers.get("authorization", "").lower() != f"bearer {self.request_token}":
                return JSONResponse({"message": "bad request token"}, status_code=401)
            self.token_requests += 1
            audience = request.query_params.get("audience")
            return JSONResponse({"value": self.token(aud=audience)})

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/jwks", jwks),
                Route("/token", token),
            ]
        )

    def http_client(self) -> httpx.AsyncClient:
        """An httpx client whose requests to the issuer reach this fake in process."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.asgi()), base_url=self.issuer)
