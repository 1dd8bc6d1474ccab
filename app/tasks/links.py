"""Signed links to a task's page and logs (pure): whoever sees the check run may follow them, nobody else.

Task ids are sequential, so an unsigned /tasks/{id} would let anyone who reaches the server read the logs
of every private repository. The token is an HMAC of the task id under a key derived from the webhook
secret (with its own label, so it never equals a webhook signature).
"""

from __future__ import annotations

import hashlib
import hmac

_LABEL = b"draftsmith task link v1"


def task_token(secret: str, task_id: int) -> str:
    key = hmac.new(secret.encode(), _LABEL, hashlib.sha256).digest()
    return hmac.new(key, str(task_id).encode(), hashlib.sha256).hexdigest()[:32]


def valid_task_token(secret: str | None, task_id: int, token: str | None) -> bool:
    if not secret or not token:
        return False
    return hmac.compare_digest(task_token(secret, task_id), token)


def task_url(public_url: str | None, secret: str | None, task_id: int) -> str | None:
    if not public_url or not secret:
        return None
    return f"{public_url.rstrip('/')}/tasks/{task_id}?token={task_token(secret, task_id)}"
