"""The dashboard's fixtures: the app wired to the fake GitHub with the App's OAuth client, and signing in."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Scene
from tests.support.browser import DESKTOP, chromium  # noqa: F401


@pytest.fixture
def dashboard(fakehub, make_draftsmith) -> Scene:
    server = make_draftsmith({**fakehub.env(), **fakehub.oauth_env()})
    fakehub.webhook_url = server.webhook_url
    return Scene(fakehub, server)


def sign_in(chromium, app_url: str, login: str, viewport: dict[str, int] = DESKTOP):
    """A fresh browser context that signs in through the fake GitHub's authorize page as `login`."""
    context = chromium.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(app_url + "/dashboard/")
    page.get_by_role("link", name="Sign in with GitHub").click()
    page.get_by_label(login, exact=True).check()
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(app_url + "/dashboard/**")
    return page
