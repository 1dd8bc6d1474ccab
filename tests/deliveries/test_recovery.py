"""Recovery's pure core: which of GitHub's listed attempts get redelivered, and where the next sweep stops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.deliveries.recovery import Attempt, fresh, lost, plan, settle

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def attempt(id: int, guid: str, status_code: int = 0, redelivery: bool = False, age: float = 0) -> Attempt:
    return Attempt(id=id, guid=guid, delivered_at=NOW - timedelta(seconds=age), redelivery=redelivery,
                   status_code=status_code, event="issues", action="assigned")


def test_an_item_of_githubs_list_reads_as_an_attempt():
    item = {"id": 42, "guid": "g-1", "delivered_at": "2026-12-01T14:00:00Z", "redelivery": False, "duration": 0.1,
            "status": "failed to connect to host", "status_code": 0, "event": "issues", "action": "assigned",
            "installation_id": 7, "repository_id": 9}
    assert Attempt.from_github(item) == attempt(42, "g-1")
    assert not Attempt.from_github(item).ok
    assert Attempt.from_github({**item, "status_code": 202}).ok


@pytest.mark.parametrize(("checkpoint", "kept", "reached"), [
    (None, [30, 20, 10], False),  # nothing checked yet: the whole page, and on to the next
    (15, [30, 20], True),         # the page reaches the checkpoint: listing stops there
    (30, [], True),
])
def test_listing_stops_at_the_checkpoint(checkpoint, kept, reached):
    page = [attempt(30, "c"), attempt(20, "b"), attempt(10, "a")]
    new, stop = fresh(page, checkpoint, horizon=NOW - timedelta(hours=1))
    assert ([a.id for a in new], stop) == (kept, reached)


def test_listing_stops_at_attempts_older_than_the_horizon():
    page = [attempt(30, "c"), attempt(20, "b", age=7200)]
    new, stop = fresh(page, None, horizon=NOW - timedelta(hours=1))
    assert ([a.id for a in new], stop) == ([30], True)


def test_an_event_with_one_successful_attempt_is_not_lost():
    attempts = [attempt(3, "a", 202, redelivery=True), attempt(2, "b"), attempt(1, "a")]
    assert [(item.guid, item.attempt_id) for item in lost(attempts)] == [("b", 2)]


def test_each_lost_event_is_redelivered_once_from_its_newest_attempt():
    attempts = [attempt(5, "b", 502), attempt(4, "a"), attempt(3, "b"), attempt(2, "a", 500)]
    planned = plan(attempts, set(), checkpoint=1)
    assert [(item.guid, item.attempt_id) for item in planned.redeliver] == [("a", 4), ("b", 5)]
    assert planned.checkpoint == 5


def test_events_the_delivery_log_holds_are_skipped():
    # GitHub gave up waiting for our answer, but ingress had recorded it: the sweeper's to process, not GitHub's
    planned = plan([attempt(2, "held"), attempt(1, "lost")], {"held"}, checkpoint=None)
    assert [item.guid for item in planned.redeliver] == ["lost"]
    assert planned.held == 1


def test_a_redelivery_that_fails_again_is_counted_once_and_not_redelivered_again():
    # Given a sweep that redelivered "a" (checkpoint 2), and that redelivery failed too (attempt 3)
    first = plan([attempt(2, "a"), attempt(1, "z", 202)], set(), checkpoint=None)
    assert [item.guid for item in first.redeliver] == ["a"] and first.checkpoint == 2
    # When the next sweep lists what came since
    second = settle(plan([attempt(3, "a", redelivery=True)], set(), checkpoint=first.checkpoint), done=0)
    # Then "a" is counted as failed again, not redelivered, and the one after sees nothing of it
    assert [item.guid for item in second.failed_again] == ["a"]
    assert second.redelivered == [] and second.checkpoint == 3
    third = plan([], set(), checkpoint=second.checkpoint)
    assert (third.redeliver, third.failed_again, third.checkpoint) == ([], [], 3)


def test_over_the_limit_the_newest_wait_below_the_checkpoint_for_the_next_sweep():
    attempts = [attempt(i, f"g{i}") for i in range(10, 0, -1)]
    planned = plan(attempts, set(), checkpoint=None, limit=3)
    assert [item.attempt_id for item in planned.redeliver] == [1, 2, 3]
    assert (planned.deferred, planned.checkpoint) == (7, 3)
    following = plan([a for a in attempts if a.id > planned.checkpoint], set(), checkpoint=planned.checkpoint, limit=3)
    assert [item.attempt_id for item in following.redeliver] == [4, 5, 6]


def test_stopped_by_a_rate_limit_the_checkpoint_stays_below_the_first_redelivery_not_asked_for():
    attempts = [attempt(6, "c"), attempt(5, "x", redelivery=True), attempt(4, "b"), attempt(2, "a")]
    planned = plan(attempts, set(), checkpoint=1)
    outcome = settle(planned, done=1, rate_limited=True)
    assert [item.guid for item in outcome.redelivered] == ["a"]
    assert outcome.checkpoint == 3 and outcome.rate_limited
    # "x" failed again above the checkpoint: it is counted by the sweep that passes it, not this one
    assert outcome.failed_again == []
