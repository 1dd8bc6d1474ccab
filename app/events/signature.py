"""HMAC-SHA256 webhook signatures as GitHub computes them (X-Hub-Signature-256)."""

from __future__ import annotations

import hmac

_PREFIX = b"sha256="


def sign(body: bytes, secret: str | bytes) -> str:
    """The X-Hub-Signature-256 header value GitHub would send for `body`."""
    return "sha256=" + _digest(body, secret).hex()


def verify(body: bytes, secret: str | bytes, header: str | bytes | None) -> bool:
    """True if `header` is the valid signature of `body`; compared in constant time.

    `header` may be the bytes an ASGI server hands over or a str; one that is not ASCII is simply wrong.
    """
    if not header:
        return False
    if isinstance(header, str):
        try:
            header = header.encode("ascii")
        except UnicodeEncodeError:  # hmac.compare_digest refuses non-ASCII str; it cannot match anyway
            return False
    if not header.startswith(_PREFIX):
        return False
    return hmac.compare_digest(_PREFIX + _digest(body, secret).hex().encode(), header)


def _digest(body: bytes, secret: str | bytes) -> bytes:
    # hmac.digest is OpenSSL's one-shot HMAC, without building an HMAC object.
    return hmac.digest(secret.encode() if isinstance(secret, str) else secret, body, "sha256")
