from app.tasks.fair_queue import QueuedRun, fair_order, next_run, runs_ahead

A, B, C = 1, 2, 3


def burst(installation: int, first_id: int, count: int) -> list[QueuedRun]:
    return [QueuedRun(first_id + i, installation) for i in range(count)]


def test_a_single_run_of_another_installation_goes_before_a_busy_installations_backlog():
    queued = burst(A, 1, 500) + [QueuedRun(1000, B)]
    assert next_run(queued, running={A: 4}, limit=None) == QueuedRun(1000, B)
    assert runs_ahead(1000, queued, {A: 4}) == 0


def test_installations_take_turns_and_each_keeps_its_own_order():
    queued = burst(A, 1, 3) + burst(B, 10, 3)
    order = [r.run_id for r in fair_order(queued, running={})]
    assert order == [1, 10, 2, 11, 3, 12]


def test_an_installation_running_more_waits_its_turn_by_that_much():
    queued = burst(A, 1, 3) + burst(B, 10, 3)
    order = [r.run_id for r in fair_order(queued, running={A: 2})]
    assert order == [10, 11, 1, 12, 2, 3]


def test_runs_ahead_counts_what_starts_first():
    queued = burst(A, 1, 40) + burst(B, 100, 2) + [QueuedRun(200, C)]
    assert runs_ahead(1, queued, {}) == 0
    assert runs_ahead(200, queued, {}) == 2  # behind the oldest of A and of B
    assert runs_ahead(38, queued, {}) == 37 + 2 + 1
    assert runs_ahead(999, queued, {}) is None


def test_an_installation_at_its_limit_is_passed_over_not_refused():
    queued = burst(A, 1, 5) + [QueuedRun(9, B)]
    assert next_run(queued, running={A: 2}, limit=2) == QueuedRun(9, B)
    assert next_run(burst(A, 1, 5), running={A: 2}, limit=2) is None
    assert next_run(burst(A, 1, 5), running={A: 1}, limit=2) == QueuedRun(1, A)


def test_nothing_queued_means_nothing_to_start():
    assert next_run([], running={A: 1}, limit=None) is None


def test_between_equal_places_the_installation_served_longest_ago_goes_first():
    from datetime import datetime

    queued = burst(A, 1, 3) + [QueuedRun(9, B)]
    just_now = {A: datetime(2026, 1, 1, 12, 0)}
    assert next_run(queued, running={}, limit=None, last_started=just_now) == QueuedRun(9, B)
    assert next_run(queued, running={}, limit=None) == QueuedRun(1, A)  # neither served: the older run
