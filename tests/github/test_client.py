"""The GitHub App client against the fake GitHub: identity, cached installation tokens, retries in one place."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from githubkit.exception import RequestFailed

from app.github.client import GitHubApp, TransientRetry
from app.settings import Settings

FAST = TransientRetry(max_retries=3, base_delay=0.01, max_rate_limit_wait=5)


def _app(fakehub, **kwargs) -> GitHubApp:
    return GitHubApp(Settings(**fakehub.env()), retry=kwargs.pop("retry", FAST), **kwargs)


def _calls(fakehub, method: str, path: str) -> list:
    return [r for r in fakehub.requests() if r.method == method and r.path == path]


async def test_identity_is_read_from_get_app_once(fakehub):
    app = _app(fakehub)

    first = await app.identity()
    second = await app.identity()

    assert first.slug == fakehub.app_slug
    assert first.bot_login == fakehub.bot_login
    assert second is first
    assert len(_calls(fakehub, "GET", "/app")) == 1


async def test_installation_token_is_cached_and_works_for_the_installation(fakehub):
    fakehub.create_repo("octo", "demo", {"README.md": "hi\n"})
    installation_id = fakehub.installation_id("octo/demo")
    app = _app(fakehub)
    path = f"/app/installations/{installation_id}/access_tokens"

    token = await app.installation_token(installation_id)
    again = await app.installation_token(installation_id)
    repos = (await app.installation_client(installation_id).arequest("GET", "/installation/repositories")).json()

    assert token.startswith("ghs_") and again == token
    assert [r["full_name"] for r in repos["repositories"]] == ["octo/demo"]
    assert len(_calls(fakehub, "POST", path)) == 1


async def test_a_token_near_expiry_is_replaced_before_use(fakehub):
    fakehub.create_repo("octo", "demo", {"README.md": "hi\n"})
    installation_id = fakehub.installation_id("octo/demo")
    # Tokens live an hour; with a margin longer than that, every cached token counts as expiring.
    app = _app(fakehub, refresh_margin=timedelta(minutes=61))

    first = await app.installation_token(installation_id)
    second = await app.installation_token(installation_id)

    assert first != second
    assert len(_calls(fakehub, "POST", f"/app/installations/{installation_id}/access_tokens")) == 2


async def test_server_errors_are_retried(fakehub):
    fakehub.fault("/app", status=502, count=2)
    app = _app(fakehub)

    identity = await app.identity()

    assert identity.slug == fakehub.app_slug
    assert [r.status for r in _calls(fakehub, "GET", "/app")] == [502, 502, 200]


async def test_server_errors_give_up_after_the_retry_budget(fakehub):
    fakehub.fault("/app", status=503, count=10)
    app = _app(fakehub, retry=TransientRetry(max_retries=2, base_delay=0.01))

    with pytest.raises(RequestFailed):
        await app.identity()
    assert len(_calls(fakehub, "GET", "/app")) == 3


async def test_client_errors_are_not_retried(fakehub):
    fakehub.fault("/app", status=404, count=1)
    app = _app(fakehub)

    with pytest.raises(RequestFailed) as failure:
        await app.identity()

    assert failure.value.response.status_code == 404
    assert len(_calls(fakehub, "GET", "/app")) == 1


async def test_a_secondary_rate_limit_waits_for_retry_after(fakehub):
    fakehub.fault("/app", status=403, count=1, retry_after=1)
    app = _app(fakehub)

    started = time.monotonic()
    await app.identity()

    assert time.monotonic() - started >= 0.9
    assert [r.status for r in _calls(fakehub, "GET", "/app")] == [403, 200]


def test_sync_callers_share_the_token_cache(fakehub):
    fakehub.create_repo("octo", "demo", {"README.md": "hi\n"})
    installation_id = fakehub.installation_id("octo/demo")
    app = _app(fakehub)

    token = app.installation_token_sync(installation_id)

    assert app.installation_token_sync(installation_id) == token
    assert app.identity_sync().bot_login == fakehub.bot_login
    assert len(_calls(fakehub, "POST", f"/app/installations/{installation_id}/access_tokens")) == 1


async def test_a_repository_token_reaches_one_repository_and_is_revoked_after_use(fakehub):
    fakehub.create_repo("octo", "demo", {"README.md": "hi\n"})
    fakehub.create_repo("octo", "other", {"README.md": "other\n"})
    installation_id = fakehub.installation_id("octo/demo")
    app = _app(fakehub)

    async with app.repository_token(installation_id, "octo/demo", {"contents": "read"}) as token:
        issued = fakehub.state.tokens[token]
        assert issued.repos == {"octo/demo"}
        assert issued.permissions == {"contents": "read", "metadata": "read"}
        assert issued.live

    assert not issued.live, "revoked when the block ends"
    assert token != await app.installation_token(installation_id), "never the cached installation token"
