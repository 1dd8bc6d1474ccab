"""Signing in refuses what it did not start, and says what is missing when it cannot start."""

from __future__ import annotations

import httpx


def test_a_callback_the_dashboard_did_not_start_signs_nobody_in(dashboard, fakehub):
    fakehub.create_repo("octo", "demo")
    fakehub.add_user("alice", permissions={"octo/demo": "write"})
    client = httpx.Client(base_url=dashboard.app.url)
    # A code GitHub really issued for alice, but with a state of someone else's making
    start = client.get("/dashboard/login")
    assert start.status_code == 302 and "code_challenge_method=S256" in start.headers["location"]
    params = dict(httpx.URL(start.headers["location"]).params)
    authorized = httpx.post(f"{fakehub.api_url}/login/oauth/authorize", data={**params, "login": "alice"})
    code = httpx.URL(authorized.headers["location"]).params["code"]

    forged = client.get("/dashboard/callback", params={"code": code, "state": "attacker-chosen"})
    assert forged.status_code == 400 and "not started here" in forged.text
    assert "draftsmith_session" not in client.cookies
    stranger = httpx.get(f"{dashboard.app.url}/dashboard/callback", params={"code": code, "state": params["state"]})
    assert stranger.status_code == 400  # another browser, without the sign-in cookie, gets nothing either
    assert client.get("/dashboard/", follow_redirects=False).text.count("Sign in with GitHub") == 1


def test_without_the_oauth_client_the_sign_in_page_names_the_missing_settings(fakehub, make_draftsmith):
    app = make_draftsmith(fakehub.env(), worker=False)
    answer = httpx.get(f"{app.url}/dashboard/login")
    assert answer.status_code == 503
    assert "GITHUB_CLIENT_ID" in answer.text and "GITHUB_CLIENT_SECRET" in answer.text
