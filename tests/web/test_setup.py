"""/setup registers the GitHub App through GitHub's manifest flow, and refuses answers it did not ask for."""

from __future__ import annotations

import html
import re
import stat

import httpx
import pytest
from dotenv import dotenv_values
from sqlalchemy import text

from app.settings import APP_SETTINGS_FILE

NAME = "Draftsmith Test"


@pytest.fixture
def app(make_draftsmith, fakehub):
    """Draftsmith with no App yet, pointed at the fake GitHub."""
    return make_draftsmith({"GITHUB_API_URL": fakehub.api_url}, worker=False)


def settings_file(app):
    return app.settings.data_dir / APP_SETTINGS_FILE


def begin(app, client: httpx.Client | None = None, **form) -> tuple[str, str]:
    """Fill in /setup and review; returns where the page posts the manifest, and the manifest."""
    review = (client or app.client).post(f"{app.url}/setup", data={"name": NAME, "owner": "user", **form})
    assert review.status_code == 200, review.text
    [target] = re.findall(r'<form method="post" action="([^"]+)"', review.text)
    [manifest] = re.findall(r'name="manifest" value="([^"]+)"', review.text)
    return html.unescape(target), html.unescape(manifest)


def create_on_github(target: str, manifest: str) -> str:
    """Press the fake GitHub's create button; returns where it sends the browser back."""
    created = httpx.post(target, data={"manifest": manifest, "create": "1"})
    assert created.status_code == 302, created.text
    return created.headers["location"]


def test_setup_saves_the_new_apps_credentials_privately_and_sends_the_user_to_install_it(app, fakehub):
    back = create_on_github(*begin(app))

    answer = app.client.get(back)

    assert answer.status_code == 303, answer.text
    new_app = fakehub.state.app
    assert answer.headers["location"] == f"{fakehub.api_url}/apps/draftsmith-test/installations/new"
    path = settings_file(app)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = dotenv_values(path)
    assert saved["GITHUB_APP_ID"] == str(new_app.id)
    assert saved["GITHUB_WEBHOOK_SECRET"] == new_app.webhook_secret
    assert saved["GITHUB_CLIENT_ID"] == new_app.client_id and saved["GITHUB_CLIENT_SECRET"]
    assert saved["GITHUB_PRIVATE_KEY"].startswith("-----BEGIN PRIVATE KEY-----\n")
    # GitHub now sends the App's webhooks to this server
    assert fakehub.webhook_url == f"{app.url}/api/github/webhooks"
    # ...and this process, which serve replaces with one reading the file, says it is on its way
    assert "starting with its new GitHub App" in app.client.get("/").text


def test_the_manifest_sent_is_app_yml_with_the_chosen_name_and_this_servers_urls(app):
    import json

    from app.github.manifest import load_manifest

    target, manifest = begin(app, owner="organization", organization="acme")

    sent = json.loads(manifest)
    assert "/organizations/acme/settings/apps/new?state=" in target
    assert sent["name"] == NAME
    assert sent["hook_attributes"]["url"] == f"{app.url}/api/github/webhooks"
    assert sent["redirect_url"] == f"{app.url}/setup/callback"
    assert sent["default_permissions"] == load_manifest()["default_permissions"]


def test_an_answer_from_another_browser_or_with_a_forged_state_is_refused_and_spends_nothing(app):
    back = create_on_github(*begin(app))
    forged = re.sub(r"state=[^&]+", "state=forged", back)

    with httpx.Client() as other_browser:
        elsewhere = other_browser.get(back)
    wrong_state = app.client.get(forged)
    no_state = app.client.get(back.split("&state=")[0])

    for refused in (elsewhere, wrong_state, no_state):
        assert refused.status_code == 400
        assert "Nothing was saved" in refused.text
    assert not settings_file(app).exists()
    # The set-up the forgeries imitated still finishes
    assert app.client.get(back).status_code == 303


def test_an_expired_set_up_is_refused(app):
    back = create_on_github(*begin(app))
    with app.engine.begin() as conn:
        conn.execute(text("UPDATE setup_states SET expires_at = created_at"))

    refused = app.client.get(back)

    assert refused.status_code == 400
    assert "has expired" in refused.text
    assert not settings_file(app).exists()


def test_a_code_github_refuses_saves_nothing_and_its_set_up_cannot_be_retried(app, fakehub):
    back = create_on_github(*begin(app))
    code = re.search(r"code=([^&]+)", back)[1]
    assert httpx.post(f"{fakehub.api_url}/app-manifests/{code}/conversions").status_code == 201  # used elsewhere

    refused = app.client.get(back)
    again = app.client.get(back)

    assert refused.status_code == 400 and "GitHub refused the code" in refused.text
    assert again.status_code == 400 and "finished already" in again.text
    assert not settings_file(app).exists()


def test_a_replayed_answer_after_set_up_changes_nothing(app):
    back = create_on_github(*begin(app))
    assert app.client.get(back).status_code == 303
    saved = settings_file(app).read_bytes()

    replayed = app.client.get(back)

    assert replayed.status_code == 409
    assert "The GitHub App is set up" in replayed.text
    assert settings_file(app).read_bytes() == saved


def test_a_second_visit_says_the_app_exists_and_offers_no_form(app, fakehub):
    app.client.get(create_on_github(*begin(app)))

    second = app.client.get("/setup")

    assert second.status_code == 200
    assert "The GitHub App is set up" in second.text
    assert f'<a href="{fakehub.api_url}/apps/draftsmith-test">{NAME}</a>' in second.text
    assert "<form" not in second.text
    assert app.client.post("/setup", data={"name": "Another", "owner": "user"}).status_code == 409


def test_set_up_is_refused_while_settings_of_the_operators_would_win_over_it(make_draftsmith, fakehub):
    app = make_draftsmith({"GITHUB_API_URL": fakehub.api_url, "GITHUB_WEBHOOK_SECRET": "set-by-hand"}, worker=False)

    page = app.client.get("/setup")

    assert page.status_code == 409
    assert "GITHUB_WEBHOOK_SECRET" in page.text and "<form" not in page.text


def test_a_bad_name_or_organisation_is_asked_again(app):
    answer = app.client.post("/setup", data={"name": "", "owner": "organization", "organization": "-acme"})

    assert answer.status_code == 400
    assert "The App's name" in answer.text and "The organisation" in answer.text
    assert 'name="name"' in answer.text  # the form again


def test_the_status_page_points_to_setup_until_an_app_is_configured(app):
    assert 'href="/setup"' in app.client.get("/").text


@pytest.mark.parametrize(("form", "github"), [
    ({"github": "github.com"}, "https://github.com"),
    ({"github": "enterprise", "host": "https://ghe.acme.dev/"}, "https://ghe.acme.dev"),
])
def test_the_manifest_goes_to_the_chosen_github_with_a_warning_it_cannot_reach_a_loopback_server(
        make_draftsmith, form, github):
    app = make_draftsmith({}, worker=False)  # GITHUB_API_URL unset: the form asks which GitHub

    review = app.client.post("/setup", data={"name": NAME, "owner": "user", **form})

    assert review.status_code == 200
    assert f'action="{github}/settings/apps/new?state=' in review.text
    assert "GitHub cannot reach" in review.text and "DRAFTSMITH_PUBLIC_URL" in review.text
    with app.engine.connect() as conn:
        [(api_url,)] = conn.execute(text("SELECT api_url FROM setup_states")).all()
    assert api_url == ("https://api.github.com" if github == "https://github.com" else f"{github}/api/v3")


def test_a_machine_github_cannot_reach_gets_a_relay_channel_as_its_webhook_url(app, fakehub):
    relay_server = f"{fakehub.api_url}/relay"

    target, manifest = begin(app, relay="on", relay_server=relay_server)
    back = create_on_github(target, manifest)
    answer = app.client.get(back)

    import json

    channel = json.loads(manifest)["hook_attributes"]["url"]
    assert channel.startswith(f"{relay_server}/") and channel != f"{relay_server}/new"
    assert answer.status_code == 303, answer.text
    assert dotenv_values(settings_file(app))["DRAFTSMITH_WEBHOOK_RELAY_URL"] == channel
    # GitHub now posts the App's deliveries to the channel, which serve's relay subscribes to.
    assert fakehub.webhook_url == channel


def test_a_relay_server_that_makes_no_channel_is_said_so_and_nothing_starts(app):
    review = app.client.post(f"{app.url}/setup", data={"name": NAME, "owner": "user", "relay": "on",
                                                       "relay_server": "http://127.0.0.1:9"})

    assert review.status_code == 502
    assert "No channel could be created at http://127.0.0.1:9" in review.text
    assert 'name="manifest"' not in review.text and not settings_file(app).exists()
