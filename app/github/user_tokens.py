"""Writes to GitHub about a person's user token (the dashboard's sign-in): revoking it at sign-out."""

from __future__ import annotations

import httpx

from app.logs import get_logger


async def revoke_user_token(api_url: str, client_id: str, client_secret: str, token: str) -> None:
    """Revoke the user token at GitHub, so a copy of the cookie taken before sign-out is worth nothing.

    https://docs.github.com/en/rest/apps/oauth-applications#delete-an-app-token
    """
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.request(
                "DELETE", f"{api_url.rstrip('/')}/applications/{client_id}/token",
                json={"access_token": token}, headers={"Accept": "application/vnd.github+json"},
                auth=(client_id, client_secret))
        if answer.status_code not in (204, 404):  # 404: already gone
            get_logger().warning("dashboard_token_revoke_failed", status=answer.status_code)
    except httpx.HTTPError as exc:  # the token lapses within 8 hours anyway
        get_logger().warning("dashboard_token_revoke_failed", error_type=type(exc).__name__)
