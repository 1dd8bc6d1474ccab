"""The fake's OAuth web flow and user-token APIs: what GitHub checks, and only what each person reaches."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlparse

import httpx

CALLBACK = "http://127.0.0.1:9/dashboard/callback"


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _authorize(fakehub, login: str, verifier: str = "v" * 43, state: str = "s1") -> str:
    client_id, _ = fakehub.oauth_env().values()
    page = httpx.get(f"{fakehub.api_url}/login/oauth/authorize", params={
        "client_id": client_id, "redirect_uri": CALLBACK, "state": state,
        "code_challenge": _challenge(verifier), "code_challenge_method": "S256"})
    assert page.status_code == 200 and f'value="{login}"' in page.text
    answer = httpx.post(f"{fakehub.api_url}/login/oauth/authorize", data={
        "client_id": client_id, "redirect_uri": CALLBACK, "state": state, "login": login,
        "code_challenge": _challenge(verifier), "code_challenge_method": "S256"})
    assert answer.status_code == 302 and answer.headers["location"].startswith(CALLBACK)
    query = parse_qs(urlparse(answer.headers["location"]).query)
    assert query["state"] == [state]
    return query["code"][0]


def _exchange(fakehub, code: str, verifier: str = "v" * 43, secret: str | None = None) -> dict:
    env = fakehub.oauth_env()
    return httpx.post(f"{fakehub.api_url}/login/oauth/access_token", headers={"Accept": "application/json"}, data={
        "client_id": env["GITHUB_CLIENT_ID"], "client_secret": secret or env["GITHUB_CLIENT_SECRET"],
        "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier}).json()


def test_a_code_buys_one_user_token_with_the_right_secret_and_verifier(fakehub):
    fakehub.create_repo("octo", "demo")
    fakehub.add_user("alice", permissions={"octo/demo": "write"})

    assert _exchange(fakehub, _authorize(fakehub, "alice"), secret="wrong")["error"] == "incorrect_client_credentials"
    assert _exchange(fakehub, _authorize(fakehub, "alice"), verifier="x" * 43)["error"] == "bad_verification_code"
    code = _authorize(fakehub, "alice")
    token = _exchange(fakehub, code)
    assert token["access_token"].startswith("ghu_") and token["token_type"] == "bearer" and token["expires_in"] == 28800
    assert _exchange(fakehub, code)["error"] == "bad_verification_code"  # codes are single-use

    me = httpx.get(f"{fakehub.api_url}/user", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.json()["login"] == "alice"
    assert httpx.get(f"{fakehub.api_url}/user", headers={"Authorization": "Bearer ghu_forged"}).status_code == 401


def test_a_user_token_lists_only_the_installations_and_repositories_its_person_reaches(fakehub):
    fakehub.create_repo("octo", "demo")
    fakehub.create_repo("octo", "secret", private=True)
    fakehub.create_repo("acme", "tools")
    fakehub.add_user("alice", permissions={"octo/demo": "write", "octo/secret": "admin"})
    fakehub.add_user("rita", permissions={"octo/demo": "read"})

    def reach(login: str) -> dict[str, dict]:
        token = _exchange(fakehub, _authorize(fakehub, login))["access_token"]
        gh = httpx.Client(base_url=fakehub.api_url, headers={"Authorization": f"Bearer {token}"})
        found = {}
        for installation in gh.get("/user/installations").json()["installations"]:
            for repo in gh.get(f"/user/installations/{installation['id']}/repositories").json()["repositories"]:
                found[repo["full_name"]] = repo["permissions"]
        return found

    alice, rita = reach("alice"), reach("rita")
    assert sorted(alice) == ["octo/demo", "octo/secret"]
    assert alice["octo/secret"]["admin"] and alice["octo/demo"]["push"] and not alice["octo/demo"]["admin"]
    assert sorted(rita) == ["octo/demo"] and not rita["octo/demo"]["push"]


def test_the_app_revokes_a_user_token_with_its_client_credentials_only(fakehub):
    fakehub.create_repo("octo", "demo")
    fakehub.add_user("alice", permissions={"octo/demo": "write"})
    token = _exchange(fakehub, _authorize(fakehub, "alice"))["access_token"]
    env = fakehub.oauth_env()
    url = f"{fakehub.api_url}/applications/{env['GITHUB_CLIENT_ID']}/token"

    wrong = httpx.request("DELETE", url, json={"access_token": token}, auth=(env["GITHUB_CLIENT_ID"], "nope"))
    assert wrong.status_code == 404
    assert httpx.get(f"{fakehub.api_url}/user", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    revoked = httpx.request("DELETE", url, json={"access_token": token},
                            auth=(env["GITHUB_CLIENT_ID"], env["GITHUB_CLIENT_SECRET"]))
    assert revoked.status_code == 204
    assert httpx.get(f"{fakehub.api_url}/user", headers={"Authorization": f"Bearer {token}"}).status_code == 401
