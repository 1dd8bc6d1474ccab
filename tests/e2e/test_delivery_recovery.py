"""An assignment GitHub could not deliver while the app was down is redelivered once it is up, and acted on once."""

from __future__ import annotations

from app.deliveries.sweeper import Sweeper
from tests.e2e.conftest import REPO, Scene, command_config
from tests.support.app_server import free_port


def test_an_assignment_made_while_the_app_was_down_still_becomes_a_pull_request(fakehub, make_draftsmith):
    # Given the app is down: nothing listens where GitHub sends the App's webhooks
    fakehub.webhook_url = f"http://127.0.0.1:{free_port()}/api/github/webhooks"
    scene = Scene(fakehub, None)
    scene.repo(command_config("sed -i 's/tpyo/typo/' README.md && echo fixed the typo"))
    number = fakehub.open_issue(REPO, "Fix typo in README", "The README says tpyo.")

    # When alice assigns the bot, GitHub records the delivery as failed
    fakehub.assign(REPO, number, scene.bot)
    [failed] = fakehub.deliveries("issues", "assigned")
    assert failed.status_code is None and failed.error

    # And then the app starts, its sweeper with it
    scene.app = make_draftsmith(fakehub.env())
    fakehub.webhook_url = scene.app.webhook_url
    sweeper = Sweeper(scene.app.runtime, interval=0.2).start()
    try:
        scene.wait_for(lambda: scene.app.delivery(failed.id), what="the assignment to be redelivered")
        [task] = scene.wait_settled()
    finally:
        sweeper.stop()

    # Then GitHub sent it again under its own guid, once, and the task ran to a pull request
    assert [(d.id, d.redelivery, d.status_code) for d in fakehub.deliveries("issues", "assigned")] == [
        (failed.id, False, None), (failed.id, True, 202)]
    assert scene.app.delivery(failed.id).status == "processed"
    assert task.status == "succeeded", task.status_reason
    assert task.delivery_id == failed.id
    [pr] = scene.pulls()
    assert f"Closes #{number}" in pr.body
    # And /metrics counts both redeliveries (issues.opened was lost too)
    metrics = scene.app.client.get("/metrics").text
    assert "draftsmith_recovery_redeliveries_total 2.0" in metrics
    assert "draftsmith_recovery_failed_again_total 0.0" in metrics
