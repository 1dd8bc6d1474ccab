"""Requests are checked against GitHub's OpenAPI description; faults and the admin API behave as documented."""

from __future__ import annotations

import time

import httpx


def test_request_violating_the_description_is_refused_with_githubs_error_shape(fakehub):
    fakehub.create_repo("octo", "demo")
    api = fakehub.as_app("octo/demo")
    sha = api.get("/repos/octo/demo/git/ref/heads/main").json()["object"]["sha"]

    missing = api.post("/repos/octo/demo/check-runs", json={"head_sha": sha})
    wrong_enum = api.post("/repos/octo/demo/check-runs", json={"name": "x", "head_sha": sha, "status": "bogus"})
    wrong_type = api.post("/repos/octo/demo/pulls", json={"title": "t", "head": "a", "base": "main", "draft": "yes"})

    for response in (missing, wrong_enum, wrong_type):
        assert response.status_code == 422
        body = response.json()
        assert body["message"].startswith("Invalid request.")
        assert body["documentation_url"].startswith("https://docs.github.com/")
        assert body["errors"]
    assert "'name' is a required property" in missing.json()["message"]
    assert fakehub.state.check_runs == {}


def test_unknown_route_is_404_and_a_described_but_unserved_one_says_so(fakehub):
    fakehub.create_repo("octo", "demo")
    api = fakehub.as_app("octo/demo")
    assert api.get("/repos/octo/demo/no-such-thing").status_code == 404
    unserved = api.get("/repos/octo/demo/deployments")
    assert unserved.status_code == 501
    assert "does not implement" in unserved.json()["message"]


def test_githubs_accept_header_is_accepted(fakehub):
    fakehub.create_repo("octo", "demo")
    response = fakehub.as_user("alice").get("/repos/octo/demo", headers={"Accept": "application/vnd.github+json"})
    assert response.status_code == 200


def test_faults_fail_the_next_matching_calls_then_clear(fakehub):
    fakehub.create_repo("octo", "demo")
    api = fakehub.as_app("octo/demo")
    httpx.post(f"{fakehub.api_url}/_fakehub/faults", json={
        "method": "POST", "path": "/repos/octo/*/issues/*/comments", "status": 403, "count": 1, "retry_after": 7})
    number = fakehub.open_issue("octo/demo", "x")
    limited = api.post(f"/repos/octo/demo/issues/{number}/comments", json={"body": "hi"})
    assert limited.status_code == 403
    assert limited.headers["retry-after"] == "7"
    assert "secondary rate limit" in limited.json()["message"]
    assert api.post(f"/repos/octo/demo/issues/{number}/comments", json={"body": "hi"}).status_code == 201


def test_a_timed_fault_fails_every_other_call_of_the_app_and_spares_people_then_ends(fakehub):
    # Given a fault on every other call the App makes, for one second
    fakehub.create_repo("octo", "demo")
    api = fakehub.as_app("octo/demo")
    created = httpx.post(f"{fakehub.api_url}/_fakehub/faults", json={
        "path": "/repos/octo/demo*", "status": 502, "every": 2, "seconds": 1, "app_only": True})
    assert created.status_code == 201 and created.json()["count"] is None

    # Then the App's calls alternate between answered and 502, while a person's calls all pass
    assert [api.get("/repos/octo/demo").status_code for _ in range(4)] == [200, 502, 200, 502]
    assert all(fakehub.as_user("alice").get("/repos/octo/demo").status_code == 200 for _ in range(3))

    # And once its time is up every call is answered
    time.sleep(1.05)
    assert [api.get("/repos/octo/demo").status_code for _ in range(2)] == [200, 200]
    assert fakehub.state.faults == []


def test_hang_fault_delays_the_answer(fakehub):
    fakehub.create_repo("octo", "demo")
    fakehub.fault("/repos/octo/demo", hang=0.5, method="GET")
    started = time.monotonic()
    assert fakehub.as_user("alice").get("/repos/octo/demo").status_code == 200
    assert time.monotonic() - started >= 0.5


def test_audit_list_records_method_path_actor_status_and_body(fakehub):
    fakehub.create_repo("octo", "demo")
    fakehub.open_issue("octo/demo", "Title", "Body", as_user="alice")
    [record] = httpx.get(f"{fakehub.api_url}/_fakehub/requests").json()
    assert record == {"method": "POST", "path": "/repos/octo/demo/issues", "query": "", "actor": "alice",
                      "status": 201, "body": {"title": "Title", "body": "Body"}}


def test_admin_api_creates_repos_and_users_with_permissions(fakehub):
    created = httpx.post(f"{fakehub.api_url}/_fakehub/repos", json={
        "owner": "octo", "name": "demo", "default_branch": "trunk", "files": {"a.txt": "a"}})
    assert created.status_code == 201
    assert created.json()["clone_url"] == f"{fakehub.api_url}/octo/demo.git"
    httpx.post(f"{fakehub.api_url}/_fakehub/users",
               json={"login": "bob", "type": "User", "permissions": {"octo/demo": "maintain"}})
    answer = fakehub.as_app("octo/demo").get("/repos/octo/demo/collaborators/bob/permission").json()
    assert (answer["permission"], answer["role_name"]) == ("write", "maintain")
    content = fakehub.as_app("octo/demo").get("/repos/octo/demo/contents/a.txt").json()
    assert content["encoding"] == "base64"
    missing = fakehub.as_app("octo/demo").get("/repos/octo/demo/contents/.github/draftsmith.yml")
    assert missing.status_code == 404
