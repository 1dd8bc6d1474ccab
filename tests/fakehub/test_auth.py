"""The fake authenticates like GitHub: App JWTs for /app, installation tokens scoped to their repositories."""

from __future__ import annotations

import httpx

from tests.fakehub.conftest import app_jwt


def test_app_jwt_signed_by_the_app_key_reads_the_app(fakehub):
    response = httpx.get(f"{fakehub.api_url}/app", headers={"Authorization": f"Bearer {app_jwt(fakehub)}"})
    assert response.status_code == 200
    assert response.json()["slug"] == fakehub.app_slug


def test_expired_jwt_is_refused_with_401(fakehub):
    token = app_jwt(fakehub, iat_offset=-700, exp_offset=-60)
    response = httpx.get(f"{fakehub.api_url}/app", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "exp" in response.json()["message"]
    assert response.json()["documentation_url"].startswith("https://docs.github.com/")


def test_jwt_expiring_more_than_ten_minutes_ahead_is_refused(fakehub):
    token = app_jwt(fakehub, iat_offset=0, exp_offset=3600)
    assert httpx.get(f"{fakehub.api_url}/app", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_jwt_signed_by_another_key_is_refused(fakehub):
    from app.fakehub.hub import generate_private_key
    import jwt, time

    now = int(time.time())
    forged = jwt.encode({"iat": now - 60, "exp": now + 300, "iss": str(fakehub.app_id)}, generate_private_key(),
                        algorithm="RS256")
    assert httpx.get(f"{fakehub.api_url}/app", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_installation_token_is_issued_for_an_installation_and_reads_its_repo(fakehub):
    fakehub.create_repo("octo", "demo")
    jwt_headers = {"Authorization": f"Bearer {app_jwt(fakehub)}"}
    installation = httpx.get(f"{fakehub.api_url}/repos/octo/demo/installation", headers=jwt_headers).json()
    issued = httpx.post(f"{fakehub.api_url}/app/installations/{installation['id']}/access_tokens", headers=jwt_headers)
    assert issued.status_code == 201
    token = issued.json()["token"]
    assert token.startswith("ghs_")
    response = httpx.get(f"{fakehub.api_url}/repos/octo/demo", headers={"Authorization": f"token {token}"})
    assert response.status_code == 200
    assert response.json()["full_name"] == "octo/demo"


def test_token_for_installation_a_gets_404_on_a_repo_of_installation_b(fakehub):
    fakehub.create_repo("octo", "demo")
    fakehub.create_repo("other", "private-thing")
    assert fakehub.installation_id("octo/demo") != fakehub.installation_id("other/private-thing")
    token = fakehub.installation_token("octo/demo")
    response = httpx.get(f"{fakehub.api_url}/repos/other/private-thing/issues/1",
                         headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 404
    assert response.json()["message"] == "Not Found"


def test_unknown_token_and_missing_credentials_are_401(fakehub):
    fakehub.create_repo("octo", "demo")
    assert httpx.get(f"{fakehub.api_url}/repos/octo/demo",
                     headers={"Authorization": "token ghs_made_up"}).status_code == 401
    assert httpx.get(f"{fakehub.api_url}/repos/octo/demo").status_code == 401


def test_installation_token_cannot_call_app_routes(fakehub):
    fakehub.create_repo("octo", "demo")
    token = fakehub.installation_token("octo/demo")
    assert httpx.get(f"{fakehub.api_url}/app", headers={"Authorization": f"token {token}"}).status_code == 401
