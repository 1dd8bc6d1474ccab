"""Webhooks leave the fake signed like GitHub's, shaped so githubkit parses them, before the causing call returns."""

from __future__ import annotations

import json

import httpx
from githubkit.webhooks import parse, verify


def test_assignment_by_a_person_sends_a_signed_issues_assigned_webhook(fakehub, webhook_sink):
    fakehub.webhook_url = webhook_sink.url
    fakehub.create_repo("octo", "demo")
    fakehub.add_user("alice", permissions={"octo/demo": "write"})
    number = fakehub.open_issue("octo/demo", "Fix the typo", "In README", as_user="alice")

    fakehub.assign("octo/demo", number, fakehub.bot_login, as_user="alice")

    # Delivered synchronously: it is already here when the assignment call has returned.
    headers, body = webhook_sink.received[-1]
    assert headers["x-github-event"] == "issues"
    assert headers["user-agent"].startswith("GitHub-Hookshot/")
    assert verify(fakehub.webhook_secret, body, headers["x-hub-signature-256"])
    assert not verify("some other secret", body, headers["x-hub-signature-256"])
    event = parse("issues", body)
    assert event.action == "assigned"
    assert event.assignee.login == fakehub.bot_login
    assert event.sender.login == "alice"
    assert event.installation.id == fakehub.installation_id("octo/demo")
    [delivery] = fakehub.deliveries("issues", "assigned")
    assert delivery.status_code == 202 and delivery.id == headers["x-github-delivery"]


EVENTS = {
    "issues": {"opened", "labeled", "assigned", "unassigned"},
    "issue_comment": {"created", "edited"},
    "pull_request": {"opened"},
    "pull_request_review": {"submitted"},
    "pull_request_review_comment": {"created"},
    "check_run": {"created", "rerequested", "requested_action"},
    "installation": {"created"},
}


def test_every_kind_of_webhook_the_fake_sends_parses_in_githubkit(fakehub):
    fakehub.create_repo("octo", "demo", files={"README.md": "hi\n"})
    fakehub.add_user("alice", permissions={"octo/demo": "write"})
    number = fakehub.open_issue("octo/demo", "Fix", as_user="alice")
    comment = fakehub.comment("octo/demo", number, "@draftsmith-dev run", as_user="alice")
    fakehub.edit_comment("octo/demo", comment, "@draftsmith-dev run please", as_user="alice")
    fakehub.label("octo/demo", number, "bug", as_user="alice")
    fakehub.assign("octo/demo", number, fakehub.bot_login, as_user="alice")
    fakehub.unassign("octo/demo", number, fakehub.bot_login, as_user="alice")
    bot = fakehub.as_app("octo/demo")
    main = bot.get("/repos/octo/demo/git/ref/heads/main").json()["object"]["sha"]
    tree = bot.post("/repos/octo/demo/git/trees", json={"tree": [{"path": "x", "mode": "100644", "type": "blob", "content": "x"}]}).json()
    commit = bot.post("/repos/octo/demo/git/commits", json={"message": "x", "tree": tree["sha"], "parents": [main]}).json()
    bot.post("/repos/octo/demo/git/refs", json={"ref": "refs/heads/fix", "sha": commit["sha"]})
    pull = bot.post("/repos/octo/demo/pulls", json={"title": "Fix", "head": "fix", "base": "main", "draft": True}).json()
    fakehub.review("octo/demo", pull["number"], "Please rename", event="REQUEST_CHANGES",
                   comments=[{"path": "x", "line": 1, "body": "rename this"}], as_user="alice")
    check = bot.post("/repos/octo/demo/check-runs", json={
        "name": "draftsmith", "head_sha": commit["sha"], "status": "completed", "conclusion": "failure",
        "actions": [{"label": "Retry", "description": "Run again", "identifier": "retry"}]}).json()
    fakehub.rerequest_check_run(check["id"], as_user="alice")
    fakehub.request_check_run_action(check["id"], "retry", as_user="alice")
    fakehub.send_installation_created("octo")

    sent = {(d.event, d.action) for d in fakehub.deliveries()}
    assert {(event, action) for event, actions in EVENTS.items() for action in actions} <= sent
    for delivery in fakehub.deliveries():
        parsed = parse(delivery.event, json.dumps(delivery.payload).encode())
        assert parsed.action == delivery.action
    [requested] = fakehub.deliveries("check_run", "requested_action")
    assert requested.payload["requested_action"] == {"identifier": "retry"}
    assert requested.payload["sender"]["login"] == "alice"


def test_the_bots_own_comment_is_sent_too_with_a_bot_sender(fakehub):
    fakehub.create_repo("octo", "demo")
    number = fakehub.open_issue("octo/demo", "Fix", as_user="alice")
    fakehub.as_app("octo/demo").post(f"/repos/octo/demo/issues/{number}/comments", json={"body": "Working on it"})
    [delivery] = fakehub.deliveries("issue_comment", "created")
    assert delivery.payload["sender"]["login"] == fakehub.bot_login
    assert delivery.payload["sender"]["type"] == "Bot"
    assert delivery.payload["comment"]["user"]["type"] == "Bot"


def test_deliveries_record_the_receivers_answer_and_an_unreachable_receiver(fakehub, webhook_sink):
    fakehub.create_repo("octo", "demo")
    webhook_sink.status = 500
    fakehub.webhook_url = webhook_sink.url
    fakehub.open_issue("octo/demo", "First")
    fakehub.webhook_url = "http://127.0.0.1:9/nothing-listens-here"
    fakehub.open_issue("octo/demo", "Second")
    first, second = fakehub.deliveries("issues", "opened")
    assert first.status_code == 500
    assert second.status_code is None and second.error
    listed = httpx.get(f"{fakehub.api_url}/_fakehub/deliveries").json()
    assert [d["status_code"] for d in listed] == [500, None]
