"""Dashboard sessions: who signed in and their user token, in an encrypted, signed, HTTP-only cookie; CSRF tokens.

The cookie is a Fernet token (AES-128-CBC and HMAC-SHA256, from `cryptography`, already a dependency) under a
key derived from the master key that encrypts stored credentials, which never leaves this server. So the
user token is never in the cookie in clear, a changed cookie is refused, and every web process can read a
session another made: nothing is kept on the server.

CSRF: each session holds a random secret; every form carries it and a POST without the session's value is
refused (the synchronizer token pattern). It needs the body of form posts, which is why we do not use
starlette-csrf: that middleware compares a header that a plain HTML form (no JavaScript) cannot send.
SameSite=Lax on the cookie stops most cross-site posts before they reach the check.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.responses import Response

SESSION_COOKIE = "draftsmith_session"
SIGNIN_COOKIE = "draftsmith_signin"
COOKIE_PATH = "/dashboard"
SIGNIN_TTL_SECONDS = 600  # the round trip through GitHub's authorize page
MAX_SESSION_SECONDS = 8 * 3600  # GitHub's user access tokens last 8 hours
_LABEL = b"draftsmith dashboard session v1"


@dataclass(frozen=True)
class Session:
    login: str
    user_id: int
    token: str
    expires_at: float  # epoch seconds: the user token's expiry
    csrf: str

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at


class SessionCodec:
    """Seals and opens the dashboard's cookies with keys derived from the credential key ring."""

    def __init__(self, master_keys: list[bytes], *, secure: bool) -> None:
        self.secure = secure
        self._fernet = MultiFernet([Fernet(_derive(key)) for key in master_keys])

    def seal(self, data: dict) -> str:
        return self._fernet.encrypt(json.dumps(data, separators=(",", ":")).encode()).decode()

    def open(self, value: str | None, ttl: int) -> dict | None:
        if not value:
            return None
        try:
            return json.loads(self._fernet.decrypt(value.encode(), ttl=ttl))
        except (InvalidToken, ValueError):
            return None

    def session(self, value: str | None) -> Session | None:
        data = self.open(value, MAX_SESSION_SECONDS)
        try:
            session = Session(**data) if data else None
        except TypeError:
            return None
        return None if session is None or session.expired else session

    def set_cookie(self, response: Response, name: str, data: dict, max_age: int) -> None:
        response.set_cookie(name, self.seal(data), max_age=max_age, path=COOKIE_PATH, httponly=True,
                            samesite="lax", secure=self.secure)

    def start_session(self, response: Response, session: Session) -> None:
        max_age = max(1, min(MAX_SESSION_SECONDS, int(session.expires_at - time.time())))
        self.set_cookie(response, SESSION_COOKIE, asdict(session), max_age)

    def end_session(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax", secure=self.secure)


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(session: Session | None, submitted: str | None) -> bool:
    return session is not None and bool(submitted) and hmac.compare_digest(session.csrf, submitted or "")


def _derive(master: bytes) -> bytes:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(master)
    return base64.urlsafe_b64encode(key)
