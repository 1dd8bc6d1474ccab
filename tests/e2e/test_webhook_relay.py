"""With the App's webhooks going to a relay channel, the app still acts on each delivery exactly once:
through the subscriber, a redelivery, and a stream dropped in the middle of a burst."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.fakehub.webhooks import redeliver
from app.relay.subscriber import create_channel
from tests.e2e.conftest import REPO, Scene, command_config
from tests.support.relay import RelayThread

EDIT = command_config("echo more >> README.md && echo edited")


class Relayed:
    """The fake GitHub posting to a channel, and the app subscribed to it (as DRAFTSMITH_WEBHOOK_RELAY_URL does)."""

    def __init__(self, fakehub, app) -> None:
        self.fakehub = fakehub
        self.channel = asyncio.run(create_channel(f"{fakehub.api_url}/relay"))
        self.name = self.channel.rsplit("/", 1)[1]
        fakehub.webhook_url = self.channel
        self.thread = RelayThread(self.channel, app.webhook_url).start()
        self.stats = self.thread.relay.stats
        self.scene = Scene(fakehub, app)
        self.scene.wait_for(lambda: self.state()["open_streams"] == 1, what="the relay to subscribe")

    def state(self) -> dict:
        return httpx.get(f"{self.fakehub.api_url}/_fakehub/relay/{self.name}").json()

    def drop(self, after: int, partial: bool = True) -> None:
        httpx.post(f"{self.fakehub.api_url}/_fakehub/relay/{self.name}/drop", json={"after": after, "partial": partial})


@pytest.fixture
def relayed(fakehub, draftsmith):
    relayed = Relayed(fakehub, draftsmith)
    yield relayed
    relayed.thread.stop()


def test_an_assignment_sent_to_the_channel_is_acknowledged_and_a_redelivery_changes_nothing(relayed, fakehub, draftsmith):
    scene = relayed.scene
    scene.repo(EDIT)
    number = fakehub.open_issue(REPO, "Docs", "")
    draftsmith.hold_runs()  # the acknowledgement is what this test looks at

    # When alice assigns the bot, GitHub posts to the channel (and the channel says OK)
    fakehub.assign(REPO, number, scene.bot)
    [assigned] = fakehub.deliveries("issues", "assigned")
    assert (assigned.url, assigned.status_code) == (relayed.channel, 200)

    # Then the delivery reached ingress, signed as GitHub signed it, and the bot acknowledged it
    scene.wait_for(lambda: draftsmith.delivery(assigned.id), what="the relayed delivery to be recorded")
    draftsmith.join_deliveries()
    [task] = scene.tasks()
    assert task.delivery_id == assigned.id and task.status == "queued"
    assert [r.content for r in fakehub.repo(REPO).issues[number].reactions] == ["eyes"]
    [progress] = scene.bot_comments(number)

    # When GitHub redelivers it (someone pressed "Redeliver"): the same X-GitHub-Delivery, through the channel
    redeliver(fakehub.state, assigned)
    scene.wait_for(lambda: relayed.stats.duplicates == 1, what="the redelivery to reach ingress")
    draftsmith.join_deliveries()

    # Then ingress dropped it: still one task, one reaction, one progress comment
    assert [t.id for t in scene.tasks()] == [task.id]
    assert [r.content for r in fakehub.repo(REPO).issues[number].reactions] == ["eyes"]
    assert [c.id for c in scene.bot_comments(number)] == [progress.id]
    # And everything GitHub sent (the bot's own comment, PR and check run included) was relayed once
    sent = {d.id for d in fakehub.deliveries()}
    scene.wait_for(lambda: relayed.stats.relayed == len(sent), what="the bot's own deliveries to be relayed")
    assert all(draftsmith.delivery(guid) for guid in sent)
    assert (relayed.stats.duplicates, relayed.stats.refused) == (1, 0)


def test_a_stream_dropped_mid_burst_reconnects_and_each_delivery_is_acted_on_once(relayed, fakehub, draftsmith):
    scene = relayed.scene
    scene.repo(EDIT)
    number = fakehub.open_issue(REPO, "Docs", "")
    scene.wait_for(lambda: fakehub.deliveries("issues", "opened") and relayed.stats.relayed >= 1,
                   what="issues.opened to be relayed")

    # Given the channel's stream will be cut half way through the eighth event from now
    relayed.drop(after=7, partial=True)

    # When alice asks for the status twenty times (the bot's replies go through the channel too)
    for _ in range(20):
        fakehub.comment(REPO, number, "/agent status")
    asked = [d for d in fakehub.deliveries("issue_comment", "created") if d.payload["sender"]["login"] == "alice"]
    assert len(asked) == 20 and all(d.status_code == 200 for d in asked)

    # Then every comment got exactly one reply
    scene.wait_for(lambda: len(scene.bot_comments(number)) >= 20, timeout=30, what="20 replies")
    draftsmith.join_deliveries(timeout=30)
    replies = scene.bot_comments(number)
    assert len(replies) == 20
    assert {draftsmith.delivery(d.id).status for d in asked} == {"processed"}
    # And the relay reconnected once, resuming after the last event it had handed over
    state = relayed.state()
    assert state["connects"] == 2 and state["last_event_ids"][0] is None and state["last_event_ids"][1]
    assert relayed.stats.reconnects == 1
    # And relayed each delivery GitHub sent exactly once: none lost, none twice
    sent = {d.id for d in fakehub.deliveries()}
    scene.wait_for(lambda: relayed.stats.relayed == len(sent), what="every delivery to be relayed")
    assert all(draftsmith.delivery(guid) for guid in sent)
    assert relayed.stats.duplicates == 0
