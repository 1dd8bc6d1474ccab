"""The recovery job against the fake GitHub's deliveries API: pages, the log's deliveries skipped, rate limits."""

from __future__ import annotations

import pytest

from app.db import make_engine
from app.deliveries.records import NewDelivery
from app.deliveries.recovery import recover_deliveries, totals
from app.deliveries.stores import sql
from app.github.client import GitHubApp, TransientRetry
from app.migrate import upgrade
from app.runtime import Runtime
from app.settings import Settings
from tests.support.app_server import free_port

REPO = "octo/demo"


@pytest.fixture
def runtime(fakehub, sqlite_url):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    settings = Settings(**fakehub.env(), DATABASE_URL=sqlite_url)
    github = GitHubApp(settings, retry=TransientRetry(max_retries=2, base_delay=0.01, max_rate_limit_wait=5))
    runtime = Runtime(settings, engine=engine, github=github)
    yield runtime
    runtime.close()
    engine.dispose()


@pytest.fixture
def app_down(fakehub):
    """Nothing listens where GitHub sends the App's webhooks; `issues(n)` opens n issues it fails to deliver."""
    fakehub.webhook_url = f"http://127.0.0.1:{free_port()}/api/github/webhooks"
    fakehub.create_repo(*REPO.split("/"))
    fakehub.add_user("alice", permissions={REPO: "write"})

    def issues(count: int) -> list[str]:
        for n in range(count):
            fakehub.open_issue(REPO, f"Issue {n}", as_user="alice")
        return [d.id for d in fakehub.deliveries("issues", "opened")]

    return issues


def _redelivered(fakehub) -> list[str]:
    return [d.id for d in fakehub.deliveries() if d.redelivery]


def test_lost_deliveries_over_several_pages_are_redelivered_once_and_a_failed_redelivery_counted_once(
        fakehub, runtime, app_down):
    # Given five deliveries GitHub could not hand over, one of which ingress had recorded all the same
    guids = app_down(5)
    sql.record_batch(runtime.engine, [NewDelivery(guids[0], "issues", "opened", None, b"{}")])

    # When recovery lists them two to a page, while the app is still unreachable
    first = recover_deliveries(runtime, per_page=2)

    # Then the four the log lacks are redelivered, oldest first, under their own guids
    assert [item.guid for item in first.redelivered] == guids[1:]
    assert _redelivered(fakehub) == guids[1:]
    listings = [r for r in fakehub.requests() if r.path == "/app/hook/deliveries"]
    assert len(listings) == 3 and all(r.status == 200 for r in listings)

    # And those redeliveries, failed again, are counted once and not redelivered again
    second = recover_deliveries(runtime, per_page=2)
    assert [item.guid for item in second.failed_again] == guids[1:] and second.redelivered == []
    third = recover_deliveries(runtime, per_page=2)
    assert third.redelivered == [] and third.failed_again == []
    assert _redelivered(fakehub) == guids[1:]
    assert {k: v for k, v in totals(runtime.engine).items() if k != "checked_at"} == {
        "redeliveries": 4, "failed_again": 4, "rate_limited": 0}


def test_a_secondary_rate_limit_stops_the_sweep_and_the_next_one_carries_on(fakehub, runtime, app_down):
    guids = app_down(3)
    fakehub.fault("/app/hook/deliveries/*/attempts", status=403, method="POST", count=1, retry_after=60)

    stopped = recover_deliveries(runtime)

    assert stopped.rate_limited and stopped.redelivered == []
    assert _redelivered(fakehub) == []
    carried_on = recover_deliveries(runtime)
    assert [item.guid for item in carried_on.redelivered] == guids
    assert totals(runtime.engine)["rate_limited"] == 1


def test_a_rate_limited_listing_changes_nothing(fakehub, runtime, app_down):
    guids = app_down(2)
    fakehub.fault("/app/hook/deliveries", status=429, method="GET", count=1, retry_after=30)

    assert recover_deliveries(runtime).rate_limited
    assert [item.guid for item in recover_deliveries(runtime).redelivered] == guids


def test_the_first_sweep_looks_back_one_hour_only(fakehub, runtime, app_down):
    from datetime import timedelta

    [old, recent] = app_down(2)
    with fakehub.state.lock:
        next(d for d in fakehub.deliveries() if d.id == old).delivered_at -= timedelta(hours=2)

    assert [item.guid for item in recover_deliveries(runtime).redelivered] == [recent]
