"""The fake's App deliveries API: every attempt listed newest first by cursor, and redelivery under the same guid."""

from __future__ import annotations

import httpx

from tests.fakehub.conftest import app_jwt
from tests.support.app_server import free_port


def _as_app(fakehub) -> httpx.Client:
    return httpx.Client(base_url=fakehub.api_url, headers={"Authorization": f"Bearer {app_jwt(fakehub)}"})


def _open_issues(fakehub, count: int) -> None:
    fakehub.create_repo("octo", "demo")
    fakehub.add_user("alice", permissions={"octo/demo": "write"})
    for n in range(count):
        fakehub.open_issue("octo/demo", f"Issue {n}", as_user="alice")


def test_deliveries_are_listed_newest_first_a_page_at_a_time_by_the_cursor_in_the_link_header(fakehub, webhook_sink):
    fakehub.webhook_url = webhook_sink.url
    _open_issues(fakehub, 5)
    client = _as_app(fakehub)

    seen, url, params = [], "/app/hook/deliveries", {"per_page": 2}
    while url:
        response = client.get(url, params=params)
        assert response.status_code == 200, response.text
        seen += response.json()
        url, params = response.links.get("next", {}).get("url"), None

    assert [item["guid"] for item in seen] == [d.id for d in reversed(fakehub.deliveries())]
    assert [item["id"] for item in seen] == sorted((item["id"] for item in seen), reverse=True)
    first = seen[-1]
    assert (first["event"], first["action"], first["status"], first["status_code"], first["redelivery"]) == (
        "issues", "opened", "OK", 202, False)
    assert first["installation_id"] == fakehub.installation_id("octo/demo")
    assert first["repository_id"] == fakehub.repo("octo/demo").id


def test_the_deliveries_api_answers_only_the_app_itself(fakehub):
    fakehub.create_repo("octo", "demo")
    token = fakehub.installation_token("octo/demo")
    assert httpx.get(f"{fakehub.api_url}/app/hook/deliveries").status_code == 401
    response = httpx.get(f"{fakehub.api_url}/app/hook/deliveries", headers={"Authorization": f"token {token}"})
    assert response.status_code == 401


def test_a_delivery_made_while_the_app_is_down_is_listed_failed_and_redelivered_under_its_guid(fakehub, webhook_sink):
    # Given a delivery GitHub could not hand over: nothing listens on the webhook URL
    fakehub.webhook_url = f"http://127.0.0.1:{free_port()}/hook"
    _open_issues(fakehub, 1)
    client = _as_app(fakehub)
    [failed] = client.get("/app/hook/deliveries").json()
    assert (failed["status_code"], failed["redelivery"]) == (0, False)
    assert failed["status"] != "OK"

    # When the app is back and the delivery is redelivered
    fakehub.webhook_url = webhook_sink.url
    response = client.post(f"/app/hook/deliveries/{failed['id']}/attempts")

    # Then it arrives with the same X-GitHub-Delivery, and is listed as a new, successful attempt
    assert response.status_code == 202, response.text
    [(headers, _)] = webhook_sink.received
    assert headers["x-github-delivery"] == failed["guid"]
    again, original = client.get("/app/hook/deliveries").json()
    assert original == failed
    assert (again["guid"], again["redelivery"], again["status"], again["status_code"]) == (
        failed["guid"], True, "OK", 202)
    assert again["id"] > failed["id"]


def test_redelivering_an_attempt_github_never_made_is_not_found(fakehub):
    response = _as_app(fakehub).post("/app/hook/deliveries/12345/attempts")
    assert response.status_code == 404


def test_a_cursor_github_never_gave_is_refused(fakehub):
    response = _as_app(fakehub).get("/app/hook/deliveries", params={"cursor": "yesterday"})
    assert response.status_code == 400
