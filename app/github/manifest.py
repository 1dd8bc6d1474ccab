"""The App manifest, app.yml: what Draftsmith asks GitHub for, and (pure) the manifest /setup posts to GitHub."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

import app

_PACKAGED = Path(app.__file__).parent / "app.yml"  # force-included by pyproject.toml
_SOURCE_TREE = Path(app.__file__).parents[1] / "app.yml"

GITHUB_COM = "https://github.com"
GITHUB_COM_API = "https://api.github.com"
# GitHub caps App names at 34 characters. We also keep to characters a dotenv value needs no quoting for.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,33}")
# GitHub logins: alphanumerics and single hyphens, at most 39 characters.
LOGIN_PATTERN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
HOST_PATTERN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?")


@cache
def load_manifest() -> dict[str, Any]:
    path = _PACKAGED if _PACKAGED.is_file() else _SOURCE_TREE
    return yaml.safe_load(path.read_text())


def default_permissions() -> dict[str, str]:
    return dict(load_manifest()["default_permissions"])


def build_manifest(*, name: str, homepage_url: str, webhook_url: str, redirect_url: str,
                   setup_url: str) -> dict[str, Any]:
    """The manifest for a new App called `name`: app.yml's events and permissions, our URLs.

    https://docs.github.com/en/apps/sharing-github-apps/registering-a-github-app-from-a-manifest
    No `callback_urls`: nothing signs users in with the App's OAuth client yet, and a callback URL
    pointing at no route would be worse than none.
    """
    base = load_manifest()
    return {
        "name": name,
        "url": homepage_url,
        "description": base["description"],
        "hook_attributes": {"url": webhook_url, "active": bool(base["hook_attributes"].get("active", True))},
        "redirect_url": redirect_url,
        "setup_url": setup_url,
        "setup_on_update": bool(base.get("setup_on_update", False)),
        "public": bool(base.get("public", False)),
        "default_events": list(base["default_events"]),
        "default_permissions": dict(base["default_permissions"]),
    }


def web_url_for(api_url: str) -> str:
    """The GitHub people browse, for the API at `api_url`: github.com, a GHES host, or (the fake) the same origin."""
    api_url = api_url.rstrip("/")
    if api_url == GITHUB_COM_API:
        return GITHUB_COM
    return api_url.removesuffix("/api/v3")


def api_url_for(web_url: str) -> str:
    """GITHUB_API_URL for the GitHub at `web_url`: api.github.com, or GitHub Enterprise Server's /api/v3."""
    web_url = web_url.rstrip("/")
    return GITHUB_COM_API if web_url == GITHUB_COM else f"{web_url}/api/v3"


def new_app_url(web_url: str, state: str, organization: str | None = None) -> str:
    """Where the manifest is posted: the signed-in user's new-App page, or an organisation's."""
    owner = f"/organizations/{quote(organization, safe='')}" if organization else ""
    return f"{web_url.rstrip('/')}{owner}/settings/apps/new?state={quote(state, safe='')}"


def installation_url(web_url: str, slug: str) -> str:
    return f"{web_url.rstrip('/')}/apps/{quote(slug, safe='')}/installations/new"
