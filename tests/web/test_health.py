"""Operations endpoints and the status page, as an operator sees them."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from tests.support.webhooks import example


def samples(app) -> dict[tuple[str, frozenset], float]:
    response = app.client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_healthz_and_readyz_answer_when_database_and_redis_are_up(make_draftsmith):
    app = make_draftsmith()

    assert app.client.get("/healthz").status_code == 200
    ready = app.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "database": "ok", "redis": "ok"}


def test_metrics_count_deliveries_by_outcome_and_report_the_queue(make_draftsmith):
    app = make_draftsmith(worker=False)
    app.post_webhook("star", example("star", "created"))
    app.post_webhook("star", example("star", "created"), secret="wrong")

    depth = ("draftsmith_queue_depth", frozenset({"queue": "default"}.items()))
    deadline = time.monotonic() + 5
    while (before := samples(app)).get(depth) != 1 and time.monotonic() < deadline:
        time.sleep(0.01)  # enqueued just after the answer, which only waited for the record
    app.start_worker()
    app.join()
    after = samples(app)

    accepted = ("draftsmith_webhook_requests_total", frozenset({"event": "star", "action": "created", "outcome": "accepted"}.items()))
    rejected = ("draftsmith_webhook_requests_total", frozenset({"event": "star", "action": "", "outcome": "bad_signature"}.items()))
    assert before[accepted] == 1 and before[rejected] == 1
    assert before[depth] == 1
    assert after[depth] == 0
    assert before[("draftsmith_deliveries", frozenset({"event": "star", "action": "created", "status": "received"}.items()))] == 1
    assert after[("draftsmith_deliveries", frozenset({"event": "star", "action": "created", "status": "ignored"}.items()))] == 1
    assert after[("draftsmith_ingress_latency_seconds_count", frozenset())] == 2
    # What retention keeps: the delivery body recorded a moment ago is the oldest one kept
    kept = after[("draftsmith_oldest_kept_seconds", frozenset({"kind": "delivery_bodies"}.items()))]
    assert 0 <= kept < 60


def test_status_page_names_the_missing_github_settings(make_draftsmith):
    app = make_draftsmith({})

    page = app.client.get("/")
    webhook = app.post_webhook("star", example("star", "created"), secret="anything")

    assert page.status_code == 200
    for name in ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY_PATH", "GITHUB_WEBHOOK_SECRET"):
        assert name in page.text
    assert 'href="https://docs.github.com/' in page.text and 'href="/setup"' in page.text
    assert app.client.get("/setup").status_code == 200
    assert webhook.status_code == 503


def test_status_page_says_running_once_configured(make_draftsmith):
    app = make_draftsmith()

    page = app.client.get("/")

    assert "Draftsmith is running" in page.text and "missing" not in page.text
    assert 'href="/dashboard"' not in page.text  # nobody can sign in without the App's OAuth client


def test_status_page_links_to_the_dashboard_once_people_can_sign_in(make_draftsmith):
    app = make_draftsmith(GITHUB_CLIENT_ID="Iv1.abc", GITHUB_CLIENT_SECRET="shh")

    assert 'href="/dashboard"' in app.client.get("/").text
