"""The fake GitHub registers an App from a posted manifest, hands its credentials out once, and installs it."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx

MANIFEST = {
    "name": "Draftsmith Test", "url": "https://draftsmith.example", "description": "test",
    "hook_attributes": {"url": "http://127.0.0.1:9/api/github/webhooks", "active": True},
    "redirect_url": "http://127.0.0.1:9/setup/callback", "setup_url": "http://127.0.0.1:9/setup/installed",
    "public": False, "default_events": ["issues"], "default_permissions": {"issues": "write", "metadata": "read"},
}


def create_app(fakehub, manifest=MANIFEST, path="/settings/apps/new?state=abc") -> httpx.Response:
    """What a browser does: post the manifest, then press the confirmation page's button."""
    with httpx.Client(base_url=fakehub.api_url) as browser:
        confirmation = browser.post(path, data={"manifest": json.dumps(manifest)})
        assert confirmation.status_code == 200, confirmation.text
        assert "Create GitHub App" in confirmation.text
        return browser.post(path, data={"manifest": json.dumps(manifest), "create": "1"})


def code_of(redirect: httpx.Response) -> str:
    assert redirect.status_code == 302, redirect.text
    location = redirect.headers["location"]
    assert location.startswith(MANIFEST["redirect_url"] + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["abc"]
    return query["code"][0]


def test_a_posted_manifest_creates_an_app_whose_code_converts_once(fakehub):
    code = code_of(create_app(fakehub))

    converted = httpx.post(f"{fakehub.api_url}/app-manifests/{code}/conversions")

    assert converted.status_code == 201, converted.text
    data = converted.json()
    app = fakehub.state.app
    assert (data["id"], data["slug"], data["name"]) == (app.id, "draftsmith-test", "Draftsmith Test")
    assert data["webhook_secret"] == app.webhook_secret and data["client_id"] == app.client_id
    assert data["pem"].startswith("-----BEGIN PRIVATE KEY-----") and data["client_secret"]
    assert data["permissions"] == MANIFEST["default_permissions"]
    assert fakehub.webhook_url == MANIFEST["hook_attributes"]["url"]
    # A code works once
    assert httpx.post(f"{fakehub.api_url}/app-manifests/{code}/conversions").status_code == 404


def test_an_unknown_code_is_not_found(fakehub):
    assert httpx.post(f"{fakehub.api_url}/app-manifests/nope/conversions").status_code == 404


def test_an_organisation_gets_the_app_it_registered(fakehub):
    code_of(create_app(fakehub, path="/organizations/acme/settings/apps/new?state=abc"))
    assert fakehub.state.app.owner.login == "acme" and fakehub.state.app.owner.type == "Organization"


def test_a_manifest_github_would_refuse_gets_an_error_page(fakehub):
    manifest = dict(MANIFEST, default_events=["installation"])
    answer = httpx.post(f"{fakehub.api_url}/settings/apps/new", data={"manifest": json.dumps(manifest)})
    assert answer.status_code == 422
    assert "Default events unsupported: installation" in answer.text


def test_installing_the_new_app_sends_installation_created_and_leads_to_its_setup_url(fakehub, webhook_sink):
    code_of(create_app(fakehub, dict(MANIFEST, hook_attributes={"url": webhook_sink.url, "active": True})))
    slug = fakehub.state.app.slug
    with httpx.Client(base_url=fakehub.api_url) as browser:
        assert "Install Draftsmith Test" in browser.get(f"/apps/{slug}/installations/new").text
        installed = browser.post(f"/apps/{slug}/installations/new", data={"account": "octo"})

    assert installed.status_code == 302
    assert installed.headers["location"].startswith(MANIFEST["setup_url"] + "?installation_id=")
    [(headers, body)] = webhook_sink.received
    assert headers["x-github-event"] == "installation"
    assert json.loads(body)["installation"]["account"]["login"] == "octo"

