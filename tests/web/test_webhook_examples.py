"""Every @octokit/webhooks-examples payload for the events Draftsmith subscribes to is accepted and routed."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from app.models import Delivery
from tests.support.webhooks import examples

# GitHub sends installation events to every App unasked (app.yml may not list them), and we handle them.
ALWAYS_SENT = ["installation", "installation_repositories"]
SUBSCRIBED = yaml.safe_load((Path(__file__).resolve().parents[2] / "app.yml").read_text())["default_events"]


@pytest.mark.parametrize("event", SUBSCRIBED + ALWAYS_SENT)
def test_every_example_payload_is_accepted_and_routed_without_error(draftsmith, event):
    payloads = examples(event)
    assert payloads, f"no examples for {event}"

    ids = []
    for payload in payloads:
        delivery_id = str(uuid.uuid4())
        response = draftsmith.post_webhook(event, payload, delivery_id=delivery_id)
        assert response.status_code == 202, (payload.get("action"), response.text)
        ids.append(delivery_id)
    draftsmith.join(timeout=60)

    with draftsmith.engine.connect() as conn:
        rows = conn.execute(select(Delivery.action, Delivery.status, Delivery.error).where(Delivery.id.in_(ids))).all()
    assert len(rows) == len(payloads)
    failed = [(action, error) for action, status, error in rows if status not in ("processed", "ignored")]
    assert failed == []
