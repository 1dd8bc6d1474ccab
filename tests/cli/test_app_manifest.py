"""app.yml is a GitHub App manifest GitHub would accept, asking for what Draftsmith needs and no more."""

from __future__ import annotations

from pathlib import Path

import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "app.yml"

# Which permission each subscribed event needs (GitHub refuses a manifest whose events lack one).
EVENT_PERMISSION = {
    "issues": "issues",
    "issue_comment": "issues",
    "pull_request": "pull_requests",
    "pull_request_review": "pull_requests",
    "pull_request_review_comment": "pull_requests",
    "check_run": "checks",
    "check_suite": "checks",
    "workflow_job": "actions",
    "workflow_run": "actions",
}


def load() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def test_manifest_subscribes_to_the_events_draftsmith_acts_on():
    manifest = load()
    assert set(manifest["default_events"]) == set(EVENT_PERMISSION)


def test_manifest_leaves_out_events_github_sends_anyway_and_rejects():
    events = load()["default_events"]
    assert "installation" not in events and "installation_repositories" not in events


def test_every_event_is_backed_by_a_permission():
    manifest = load()
    for event in manifest["default_events"]:
        assert EVENT_PERMISSION[event] in manifest["default_permissions"], event


def test_manifest_asks_for_the_least_permissions():
    assert load()["default_permissions"] == {
        "contents": "write",
        "issues": "write",
        "pull_requests": "write",
        "checks": "write",
        "metadata": "read",
        # Cancelling a workflow run it dispatched (POST .../actions/runs/{id}/cancel) needs write.
        "actions": "write",
    }


def test_manifest_points_the_webhook_at_the_ingress_route_and_is_private():
    manifest = load()
    assert manifest["hook_attributes"]["url"].endswith("/api/github/webhooks")
    assert manifest["public"] is False
    assert manifest["name"] and manifest["url"].startswith("https://")
    assert manifest["redirect_url"].startswith("https://")


def test_the_packaged_manifest_is_this_file():
    from app.github.manifest import load_manifest

    assert load_manifest() == load()
