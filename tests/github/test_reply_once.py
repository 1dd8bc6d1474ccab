"""A delivery handled again after a transient failure does not say twice what its first attempt said."""

from __future__ import annotations

import asyncio

from app.db import make_engine
from app.github.client import GitHubApp, TransientRetry
from app.github.report import Reporter
from app.settings import Settings
from app.tasks.service import TaskService


def test_a_retried_delivery_does_not_post_the_same_reply_again(fakehub, tmp_path):
    fakehub.create_repo("octo", "demo")
    fakehub.add_user("alice", permissions={"octo/demo": "write"})
    number = fakehub.open_issue("octo/demo", "Docs", as_user="alice")
    app = GitHubApp(Settings(**fakehub.env()), retry=TransientRetry(max_retries=0, base_delay=0.01))
    gh = app.installation_client(fakehub.installation_id("octo/demo"))
    tasks = TaskService(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))

    async def scenario() -> tuple[int, int, int]:
        identity = await app.identity()
        first = await Reporter(gh, tasks, identity=identity).reply("octo/demo", number, "Here is the help.")
        again = Reporter(gh, tasks, identity=identity)
        again.retrying = True
        repeated = await again.reply("octo/demo", number, "Here is the help.")
        other = await again.reply("octo/demo", number, "Something else.")
        return first, repeated, other

    first, repeated, other = asyncio.run(scenario())
    assert repeated == first and other != first
    bodies = [c.body for c in fakehub.state.comments.values() if c.issue_number == number]
    assert bodies == ["Here is the help.", "Something else."]
