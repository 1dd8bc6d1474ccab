"""Actions OIDC tokens: accepted only when signed by the issuer's published key, for us, for the task's repo."""

from __future__ import annotations

import time

import jwt
import pytest

from app.engines.actions.oidc import OIDCError, OIDCVerifier
from tests.actions._oidc_issuer import FakeIssuer, forged_key

AUDIENCE = "https://draftsmith.example.test"


@pytest.fixture
def issuer():
    return FakeIssuer()


@pytest.fixture
async def verifier(issuer):
    async with issuer.http_client() as http:
        yield OIDCVerifier(AUDIENCE, issuer=issuer.issuer, http=http, min_refresh_seconds=0)


async def test_a_valid_token_for_the_tasks_repository_is_accepted(issuer, verifier):
    claims = await verifier.verify(issuer.token(), repository="octo/demo")
    assert claims["repository"] == "octo/demo"
    assert claims["event_name"] == "repository_dispatch"
    # Repository names are case-insensitive on GitHub.
    await verifier.verify(issuer.token(), repository="Octo/Demo")


async def test_keys_are_cached_and_refetched_when_github_rotates_them(issuer, verifier):
    await verifier.verify(issuer.token(), repository="octo/demo")
    await verifier.verify(issuer.token(), repository="octo/demo")
    assert issuer.jwks_fetches == 1
    issuer.rotate()
    await verifier.verify(issuer.token(), repository="octo/demo")
    assert issuer.jwks_fetches == 2




@pytest.mark.parametrize(
    ("make_token", "status", "reason"),
    [
        (lambda i: i.token(repository="mallory/demo"), 403, "repository"),
        (lambda i: i.token(aud="https://someone-else.example"), 401, "audience"),
        (lambda i: i.token(iat=int(time.time()) - 3600, exp=int(time.time()) - 600), 401, "expired"),
        (lambda i: i.token(nbf=int(time.time()) + 600), 401, "not valid yet"),
        (lambda i: i.token(iss="https://evil.example"), 401, "issuer"),
        (lambda i: i.token(alg="none"), 401, "algorithm"),
        (lambda i: i.token(key=forged_key()), 401, "signature"),
        (lambda i: i.token(key=forged_key(), kid="made-up"), 401, "does not publish"),
        (lambda i: i.token(repository=None), 401, "repository"),
        (lambda i: "not-a-jwt", 401, "not a JWT"),
    ],
    ids=["other-repo", "other-audience", "expired", "not-yet-valid", "other-issuer", "unsigned",
         "signed-by-another-key", "unknown-key-id", "no-repository-claim", "garbage"],
)
async def test_bad_tokens_are_refused(issuer, verifier, make_token, status, reason):
    with pytest.raises(OIDCError) as refused:
        await verifier.verify(make_token(issuer), repository="octo/demo")
    assert refused.value.status == status
    assert reason in refused.value.reason


async def test_an_hmac_signed_token_is_refused(issuer, verifier):
    # Algorithm confusion: a token that picks HS256 must never be checked with a shared secret.
    body = jwt.decode(issuer.token(), options={"verify_signature": False})
    forged = jwt.encode(body, "x" * 32, algorithm="HS256", headers={"kid": issuer.kid})
    with pytest.raises(OIDCError, match="algorithm"):
        await verifier.verify(forged, repository="octo/demo")


async def test_unknown_key_ids_do_not_refetch_more_often_than_allowed(issuer):
    async with issuer.http_client() as http:
        verifier = OIDCVerifier(AUDIENCE, issuer=issuer.issuer, http=http, min_refresh_seconds=60)
        await verifier.verify(issuer.token(), repository="octo/demo")
        for _ in range(5):
            with pytest.raises(OIDCError):
                await verifier.verify(issuer.token(kid="made-up-" + str(_)), repository="octo/demo")
    assert issuer.jwks_fetches == 1


def test_the_issuer_follows_the_github_the_app_talks_to():
    from app.engines.actions.oidc import GITHUB_ACTIONS_ISSUER, issuer_for

    assert issuer_for("https://api.github.com") == GITHUB_ACTIONS_ISSUER
    # GitHub Enterprise Server issues Actions tokens from its own host
    assert issuer_for("https://ghe.example.com/api/v3") == "https://ghe.example.com/_services/token"


def test_the_callbacks_check_tokens_against_the_configured_issuer(make_draftsmith, tmp_path):
    from app.engines.actions.callbacks import wire
    from tests.support.app_server import offline_github_env

    env = offline_github_env(tmp_path, api_url="https://ghe.example.com/api/v3")
    server = make_draftsmith(env, worker=False)
    wire(server.runtime)
    assert server.runtime.run_callbacks.oidc.issuer == "https://ghe.example.com/_services/token"
    override = make_draftsmith(env, worker=False, DRAFTSMITH_ACTIONS_OIDC_ISSUER="https://issuer.example")
    wire(override.runtime)
    assert override.runtime.run_callbacks.oidc.issuer == "https://issuer.example"
