"""With the App's webhooks going to a relay channel, the app still acts on each delivery exactly once:
through the subscriber, a redelivery, and a stream dropped in the middle of a burst."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.fakehub.webhooks import redeliver
from app.relay.state import state_path
from app.relay.subscriber import create_channel
from tests.e2e.conftest import REPO, Scene, command_config
from tests.support.relay import RelayThread

EDIT = command_config("echo more >> README.md && echo edited")


class Relayed:
    """The fake GitHub posting to a channel, and the app with DRAFTSMITH_WEBHOOK_RELAY_URL set to it and its
    relay subscriber running (in a thread here; `serve` runs it as a process: tests/cli/test_relay.py)."""

    def __init__(self, fakehub, make_draftsmith) -> None:
        self.fakehub = fakehub
        self.channel = asyncio.run(create_channel(f"{fakehub.api_url}/relay"))
        self.name = self.channel.rsplit("/", 1)[1]
        fakehub.webhook_url = self.channel
        self.app = make_draftsmith(fakehub.env(), DRAFTSMITH_WEBHOOK_RELAY_URL=self.channel)
        self.thread = RelayThread(self.channel, self.app.webhook_url,
                                  state_file=state_path(self.app.settings.data_dir)).start()
        self.stats = self.thread.relay.stats
        self.scene = Scene(fakehub, self.app)
        self.scene.wait_for(lambda: self.state()["open_streams"] == 1, what="the relay to subscribe")

    def state(self) -> dict:
        return httpx.get(f"{self.fakehub.api_url}/_fakehub/relay/{self.name}").json()

    def drop(self, after: int, partial: bool = True) -> None:
        httpx.post(f"{self.fakehub.api_url}/_fakehub/relay/{self.name}/drop", json={"after": after, "partial": partial})


@pytest.fixture
def relayed(fakehub, make_draftsmith):
    relayed = Relayed(fakehub, make_draftsmith)
    yield relayed
    relayed.thread.stop()


def test_an_assignment_sent_to_the_channel_is_acknowledged_and_a_redelivery_changes_nothing(relayed, fakehub):
    scene, draftsmith = relayed.scene, relayed.app
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


def test_a_stream_dropped_mid_burst_reconnects_and_each_delivery_is_acted_on_once(relayed, fakehub):
    scene, draftsmith = relayed.scene, relayed.app
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
    # And /metrics, answered by the web process, shows what the relay did
    expected = [f"draftsmith_relay_relayed_total {float(len(sent))}", "draftsmith_relay_duplicates_total 0.0",
                "draftsmith_relay_reconnects_total 1.0", "draftsmith_relay_connected 1.0"]
    scene.wait_for(lambda: all(line in draftsmith.client.get("/metrics").text for line in expected),
                   what=f"/metrics to show {expected}")
