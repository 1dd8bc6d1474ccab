"""The manifest /setup posts is app.yml's events and permissions with this server's URLs, sent to the right GitHub page."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.github.manifest import (
    api_url_for,
    build_manifest,
    installation_url,
    new_app_url,
    web_url_for,
)

MANIFEST = Path(__file__).resolve().parents[2] / "app.yml"


def test_the_built_manifest_asks_for_what_app_yml_lists_with_our_urls():
    app_yml = yaml.safe_load(MANIFEST.read_text())

    built = build_manifest(
        name="Draftsmith for Acme", homepage_url="https://bot.acme.dev",
        webhook_url="https://bot.acme.dev/api/github/webhooks",
        redirect_url="https://bot.acme.dev/setup/callback", setup_url="https://bot.acme.dev/setup/installed",
    )

    assert built == {
        "name": "Draftsmith for Acme",
        "url": "https://bot.acme.dev",
        "description": app_yml["description"],
        "hook_attributes": {"url": "https://bot.acme.dev/api/github/webhooks", "active": True},
        "redirect_url": "https://bot.acme.dev/setup/callback",
        "setup_url": "https://bot.acme.dev/setup/installed",
        "setup_on_update": False,
        "public": False,
        "default_events": app_yml["default_events"],
        "default_permissions": app_yml["default_permissions"],
    }


@pytest.mark.parametrize(("api_url", "web_url"), [
    ("https://api.github.com", "https://github.com"),
    ("https://api.github.com/", "https://github.com"),
    ("https://ghe.acme.dev/api/v3", "https://ghe.acme.dev"),
    ("http://127.0.0.1:3001", "http://127.0.0.1:3001"),  # the fake serves its pages beside its API
])
def test_the_web_pages_of_a_github_are_found_from_its_api_url(api_url, web_url):
    assert web_url_for(api_url) == web_url


@pytest.mark.parametrize(("web_url", "api_url"), [
    ("https://github.com", "https://api.github.com"),
    ("https://ghe.acme.dev", "https://ghe.acme.dev/api/v3"),
])
def test_a_chosen_github_gives_its_api_url(web_url, api_url):
    assert api_url_for(web_url) == api_url


@pytest.mark.parametrize(("organization", "url"), [
    (None, "https://github.com/settings/apps/new?state=s%2Ft"),
    ("acme", "https://github.com/organizations/acme/settings/apps/new?state=s%2Ft"),
])
def test_the_manifest_goes_to_the_account_or_the_organisation_page(organization, url):
    assert new_app_url("https://github.com", "s/t", organization) == url


def test_the_installation_page_is_the_apps():
    assert installation_url("https://ghe.acme.dev/", "draftsmith-acme") == \
        "https://ghe.acme.dev/apps/draftsmith-acme/installations/new"
