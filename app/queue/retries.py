"""Which handler failures are worth another try (pure), and when: GitHub or a service being briefly away."""

from __future__ import annotations

import httpx
import redis
from githubkit.exception import RequestFailed, RequestTimeout
from sqlalchemy.exc import OperationalError

# 1, 2, 4, 8 s: over in 15 s, well before the sweeper would send the delivery again (its heartbeat timeout).
MAX_RETRIES = 4
BASE_DELAY_SECONDS = 1.0


def is_transient(exc: BaseException) -> bool:
    """GitHub answering 5xx or a rate limit past the client's own retries, a timeout, a dropped connection,
    a busy or restarting database or Redis. Anything else (a bug, bad data) fails the same way again."""
    if isinstance(exc, RequestFailed):
        status = exc.response.status_code
        return status >= 500 or status == 429 or (status == 403 and "rate limit" in exc.response.text.lower())
    return isinstance(exc, (RequestTimeout, httpx.TransportError, OperationalError, redis.ConnectionError,
                            redis.TimeoutError, ConnectionError, TimeoutError))


def installation_gone(exc: BaseException) -> bool:
    """GitHub refused an installation token with 404: the App was uninstalled (or suspended) since the
    delivery was sent, so nothing can be done for it, now or later."""
    seen: BaseException | None = exc
    for _ in range(5):  # githubkit wraps the auth flow's RequestFailed in a RequestError
        if seen is None:
            return False
        if isinstance(seen, RequestFailed):
            response = seen.response
            return response.status_code == 404 and response.raw_request.url.path.endswith("/access_tokens")
        seen = getattr(seen, "origin_exc", None) or seen.__cause__
    return False


def delay_ms(attempt: int) -> int:
    """How long before retry number `attempt` (1-based)."""
    return int(BASE_DELAY_SECONDS * 1000 * 2 ** (attempt - 1))
