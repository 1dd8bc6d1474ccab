"""The App's webhook deliveries on GitHub: list them a page at a time, ask for one to be sent again."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
from githubkit import GitHub

from app.github.client import GitHubApp, TransientRetry

PER_PAGE = 100  # GitHub's most


def client(app: GitHubApp) -> GitHub:
    """The App-JWT client, except that a rate limit raises at once instead of being waited out.

    Recovery runs on the sweeper's thread, which also ends dead runs and re-enqueues deliveries: it
    stops its sweep on a 403/429 with retry-after and tries again next interval, rather than sleep.
    """
    retry = TransientRetry(max_retries=app.retry.max_retries, base_delay=app.retry.base_delay, max_rate_limit_wait=0)
    return GitHub(auth=app.app_client.auth, config=dataclasses.replace(app.app_client.config, auto_retry=retry))


def list_page(
    gh: GitHub, cursor: str | None = None, per_page: int = PER_PAGE
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `GET /app/hook/deliveries` (newest first) and the cursor of the next, None on the last.

    https://docs.github.com/rest/apps/webhooks#list-deliveries-for-an-app-webhook
    """
    params: dict[str, Any] = {"per_page": per_page}
    if cursor:
        params["cursor"] = cursor
    response = gh.request("GET", "/app/hook/deliveries", params=params)
    following = response.raw_response.links.get("next", {}).get("url")
    return response.json(), httpx.URL(following).params.get("cursor") if following else None


def redeliver(gh: GitHub, delivery_id: int) -> None:
    """`POST /app/hook/deliveries/{id}/attempts`: GitHub sends that attempt's event again, same guid (202).

    https://docs.github.com/rest/apps/webhooks#redeliver-a-delivery-for-an-app-webhook
    """
    gh.request("POST", f"/app/hook/deliveries/{delivery_id}/attempts")
