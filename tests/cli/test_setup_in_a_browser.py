"""From a fresh data dir to a working App in a browser: `serve` with nothing configured, /setup, the fake, and back.

Screenshots of each step go to .cache/screenshots/setup-*.png.
"""

from __future__ import annotations

import json
import stat
import time
import uuid

import httpx
from dotenv import dotenv_values

from tests.support.app_server import free_port
from tests.support.browser import PHONE, assert_looks_like_a_product, chromium, open_page, screenshot  # noqa: F401
from tests.support.webhooks import example, signed_headers

NAME = "Draftsmith Browser Test"


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return found


def post_webhook(url: str, secret: str) -> httpx.Response:
    payload = example("issues", "opened")
    payload["installation"] = {"id": 1, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="}
    body = json.dumps(payload).encode()
    return httpx.post(f"{url}/api/github/webhooks", content=body,
                      headers=signed_headers(body, "issues", secret, str(uuid.uuid4())), timeout=30)


def test_a_fresh_serve_gets_its_app_from_the_browser_and_uses_it_without_a_restart(start_serve, fakehub, chromium):
    # Given: `serve` in an empty directory, no App configured, GitHub being the fake
    port = free_port()
    serve = start_serve("", wait=False, GITHUB_API_URL=fakehub.api_url, DRAFTSMITH_PORT=str(port),
                        DRAFTSMITH_PUBLIC_URL=f"http://127.0.0.1:{port}", DRAFTSMITH_SWEEP_INTERVAL="0.5")
    serve.wait_healthy(timeout=90)  # a first start migrates and probes the sandbox: slow on a busy machine
    assert f"{serve.url}/setup" in serve.output  # the console points to the set-up
    assert post_webhook(serve.url, "anything").status_code == 503  # no secret yet: nothing is accepted
    old_web = {p.pid for p in serve.children_named("app.web.asgi")}

    # When: the status page's link is followed, the form submitted, and the App created on "GitHub"
    page = open_page(chromium, f"{serve.url}/")
    assert "not connected to GitHub yet" in page.inner_text("h1")
    assert_looks_like_a_product(page)
    screenshot(page, "setup-1-status")
    page.click("text=Set up the GitHub App")
    assert page.inner_text("h1") == "Register Draftsmith's GitHub App"
    assert_looks_like_a_product(page)
    screenshot(page, "setup-2-form")
    phone = open_page(chromium, f"{serve.url}/setup", viewport=PHONE)
    assert_looks_like_a_product(phone)
    screenshot(phone, "setup-2-form-phone")
    phone.close()

    page.fill("#name", NAME)
    page.click("button:has-text('Review the App')")
    assert page.inner_text("h1") == "Create the App on GitHub"
    assert f"http://127.0.0.1:{port}/api/github/webhooks" in page.inner_text("main")
    assert_looks_like_a_product(page)
    screenshot(page, "setup-3-review")

    page.click("button:has-text('Create the App on GitHub')")
    page.wait_for_url(f"{fakehub.api_url}/settings/apps/new*")
    screenshot(page, "setup-4-github-confirms")
    page.click("button:has-text('Create GitHub App for')")

    # Then: the browser is sent on to install the new App
    new_app = fakehub.state.app
    page.wait_for_url(f"{fakehub.api_url}/apps/draftsmith-browser-test/installations/new")
    screenshot(page, "setup-5-install")
    assert new_app.name == NAME

    # ...its credentials are in the data dir's settings file, readable by this user only
    path = serve.directory / ".draftsmith" / "github-app.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = dotenv_values(path)
    assert (saved["GITHUB_APP_ID"], saved["GITHUB_WEBHOOK_SECRET"]) == (str(new_app.id), new_app.webhook_secret)
    assert saved["GITHUB_PRIVATE_KEY"].startswith("-----BEGIN PRIVATE KEY-----")
    assert new_app.webhook_secret not in serve.output and saved["GITHUB_CLIENT_SECRET"] not in serve.output

    # ...and the same serve now uses them: `/` says so, webhooks signed with the new secret are accepted
    status = open_page(chromium, f"{serve.url}/")
    wait_for(lambda: status.reload() and status.inner_text("h1") == "Draftsmith is running", 60, "/ to say it is ready")
    assert "The GitHub App is ready" in status.inner_text("main")
    screenshot(status, "setup-6-ready")
    assert post_webhook(serve.url, new_app.webhook_secret).status_code == 202
    assert post_webhook(serve.url, "another-secret").status_code == 401
    assert serve.process.poll() is None
    assert not old_web & {p.pid for p in serve.children_named("app.web.asgi")}  # its web processes were replaced
    serve.wait_for_output(f"connected to GitHub App {new_app.id}")  # once the old processes have stopped
    # ...and its workers sign in as the new App (the sweeper's first look at the App's deliveries)
    wait_for(lambda: [r for r in fakehub.requests() if r.path == "/app/hook/deliveries" and r.status == 200], 60,
             "a worker to call GitHub as the new App")

    # When: the App is installed, GitHub tells the app so, and sends the browser back
    page.click("button:has-text('Install')")
    page.wait_for_url(f"{serve.url}/setup/installed*")
    assert page.inner_text("h1") == "Draftsmith is installed"
    assert_looks_like_a_product(page)
    screenshot(page, "setup-7-installed")
    [delivery] = fakehub.deliveries("installation", "created")
    assert delivery.status_code == 202

    # A second visit to /setup finds the App and changes nothing
    again = open_page(chromium, f"{serve.url}/setup")
    assert again.inner_text("h1") == "The GitHub App is set up"
    assert NAME in again.inner_text("main")
    screenshot(again, "setup-8-second-visit")
