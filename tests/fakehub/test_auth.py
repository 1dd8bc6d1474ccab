"""The fake authenticates like GitHub: App JWTs for /app, installation tokens scoped to their repositories."""

from __future__ import annotations

import subprocess

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


def _mint(fakehub, installation_id: int, **body) -> httpx.Response:
    return httpx.post(f"{fakehub.api_url}/app/installations/{installation_id}/access_tokens",
                      headers={"Authorization": f"Bearer {app_jwt(fakehub)}"}, json=body)


def test_a_token_scoped_to_one_repository_and_contents_read_can_do_only_that(fakehub, tmp_path):
    url = fakehub.create_repo("octo", "demo", {"README.md": "demo\n"})
    fakehub.create_repo("octo", "secrets", {"KEY": "sk-live\n"})
    issued = _mint(fakehub, fakehub.installation_id("octo/demo"), repositories=["demo"],
                   permissions={"contents": "read"})
    assert issued.status_code == 201
    assert issued.json()["permissions"] == {"contents": "read", "metadata": "read"}
    assert [r["full_name"] for r in issued.json()["repositories"]] == ["octo/demo"]
    headers = {"Authorization": f"token {issued.json()['token']}"}
    api = fakehub.api_url

    assert httpx.get(f"{api}/repos/octo/demo/contents/README.md", headers=headers).status_code == 200
    assert httpx.get(f"{api}/repos/octo/secrets/contents/KEY", headers=headers).status_code == 404
    refused = httpx.post(f"{api}/repos/octo/demo/git/refs", headers=headers,
                         json={"ref": "refs/heads/x", "sha": "0" * 40})
    assert (refused.status_code, refused.json()["message"]) == (403, "Resource not accessible by integration")
    assert httpx.post(f"{api}/repos/octo/demo/issues/1/comments", headers=headers,
                      json={"body": "hi"}).status_code == 403

    # Over git: it clones its repository, cannot push to it, and cannot clone the other one.
    authed = url.replace("://", f"://x-access-token:{issued.json()['token']}@", 1)
    clone = subprocess.run(["git", "clone", "-q", authed, str(tmp_path / "c")], capture_output=True, text=True)
    assert clone.returncode == 0, clone.stderr
    push = subprocess.run(["git", "-C", str(tmp_path / "c"), "push", "-q", "origin", "HEAD:refs/heads/x"],
                          capture_output=True, text=True, env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"})
    assert push.returncode != 0 and "403" in push.stderr
    other = authed.replace("/octo/demo.git", "/octo/secrets.git")
    assert subprocess.run(["git", "clone", "-q", other, str(tmp_path / "s")], capture_output=True).returncode != 0


def test_a_revoked_token_is_refused_everywhere(fakehub, tmp_path):
    url = fakehub.create_repo("octo", "demo")
    token = _mint(fakehub, fakehub.installation_id("octo/demo")).json()["token"]
    headers = {"Authorization": f"token {token}"}

    assert httpx.delete(f"{fakehub.api_url}/installation/token", headers=headers).status_code == 204

    assert httpx.get(f"{fakehub.api_url}/repos/octo/demo", headers=headers).status_code == 401
    authed = url.replace("://", f"://x-access-token:{token}@", 1)
    assert subprocess.run(["git", "clone", "-q", authed, str(tmp_path / "c")], capture_output=True,
                          env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"}).returncode != 0


def test_asking_for_more_than_the_installation_was_granted_is_refused(fakehub):
    fakehub.create_repo("octo", "demo")
    installation_id = fakehub.installation_id("octo/demo")

    assert _mint(fakehub, installation_id, permissions={"administration": "write"}).status_code == 422
    assert _mint(fakehub, installation_id, permissions={"metadata": "write"}).status_code == 422
    assert _mint(fakehub, installation_id, repositories=["not-installed"]).status_code == 422


# Routes GitHub serves with the `metadata` permission every token has (or to any installation token).
METADATA_ROUTES = {
    ("GET", "/repos/{owner}/{repo}"),
    ("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission"),
    ("GET", "/installation/repositories"),
    ("DELETE", "/installation/token"),
    ("POST", "/graphql"),
    # Served to user access tokens (the dashboard's sign-in), which need no App permission for them.
    ("GET", "/user"),
    ("GET", "/user/installations"),
    ("GET", "/user/installations/{installation_id}/repositories"),
    ("DELETE", "/applications/{client_id}/token"),  # the App's OAuth client, with Basic credentials
}


def test_every_route_the_fake_serves_names_the_permission_it_needs():
    # A new route must say what it needs, or a missing permission in app.yml would pass every test.
    from app.fakehub.auth import UNAUTHENTICATED, needs_app_jwt, required_permission
    from app.fakehub.server import API

    undecided = [(r.method, r.template) for r in API.routes
                 if not needs_app_jwt(r.template) and r.template not in UNAUTHENTICATED
                 and required_permission(r.template, r.method) is None]
    assert set(undecided) == METADATA_ROUTES


def test_an_installation_has_exactly_what_app_yml_asks_for(fakehub):
    from app.github.manifest import default_permissions

    fakehub.create_repo("octo", "demo")
    issued = _mint(fakehub, fakehub.installation_id("octo/demo"))
    assert issued.json()["permissions"] == default_permissions()


def test_cancelling_a_workflow_run_needs_actions_write(fakehub):
    fakehub.create_repo("octo", "demo")
    installation_id = fakehub.installation_id("octo/demo")
    api = fakehub.api_url
    for level, expected in (("read", 403), ("write", 404)):  # 404: allowed, but there is no run 1
        token = _mint(fakehub, installation_id, permissions={"actions": level}).json()["token"]
        answer = httpx.post(f"{api}/repos/octo/demo/actions/runs/1/cancel", headers={"Authorization": f"token {token}"})
        assert answer.status_code == expected, (level, answer.text)
