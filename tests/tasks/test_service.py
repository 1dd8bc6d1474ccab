from datetime import timedelta

import pytest

from app.models import Run
from app.tasks.service import TaskService
from app.tasks.states import IllegalTransition, Stage, Status


def _new(service: TaskService, number: int = 7, **extra):
    fields = dict(installation_id=1, repo_full_name="octo/demo", issue_number=number, requester="alice",
                  trigger="assignment", agent="command")
    fields.update(extra)
    created = service.create(**fields)
    service.release_run(created.run.id)  # as intake does once it has acknowledged the task
    return created


def test_a_new_task_is_queued_with_its_first_run(engine):
    service = TaskService(engine)
    created = _new(service)
    assert created.task.status == "queued" and created.run.status == "queued" and created.run.attempt == 1
    assert service.active_task_for("octo/demo", 7).id == created.task.id


def test_a_run_starts_once_even_if_its_message_arrives_twice(engine):
    service = TaskService(engine)
    created = _new(service)
    first = service.start_run(created.run.id, worker="w1")
    second = service.start_run(created.run.id, worker="w2")
    assert first is not None and first.task.status == "running"
    assert second is None
    assert service.get_run(created.run.id).worker == "w1"


def test_finishing_records_the_outcome_and_frees_the_issue(engine):
    service = TaskService(engine)
    created = _new(service)
    service.start_run(created.run.id, worker="w")
    done = service.finish(created.run.id, Status.FAILED, reason="agent exited with 2", exit_code=2)
    assert done.task.status == "failed" and done.task.status_reason == "agent exited with 2"
    assert done.run.exit_code == 2 and done.run.ended_at is not None
    assert service.active_task_for("octo/demo", 7) is None
    assert service.finish(created.run.id, Status.SUCCEEDED) is None  # already ended: nothing changes


def test_a_run_keeps_the_stage_it_reached_until_it_ends_and_a_retry_starts_queued(engine):
    service = TaskService(engine)
    created = _new(service)
    assert created.run.stage == "queued"
    service.start_run(created.run.id, worker="w")
    service.reach_stage(created.run.id, Stage.AGENT)
    done = service.finish(created.run.id, Status.FAILED, reason="worker died")
    assert done.run.stage == "agent"  # what the reporter renders the end from
    assert service.reach_stage(created.run.id, Stage.COMMIT) is None  # a late report moves nothing
    assert service.get_run(created.run.id).stage == "agent"
    assert service.retry(created.task.id).run.stage == "queued"


def test_cancelling_a_queued_task_ends_it_at_once(engine):
    service = TaskService(engine)
    created = _new(service)
    service.request_cancel(created.task.id)
    assert service.get(created.task.id).status == "cancelled"
    assert service.get_run(created.run.id).status == "cancelled"
    assert service.start_run(created.run.id, worker="w") is None


def test_cancelling_a_running_task_asks_its_worker_to_stop(engine):
    service = TaskService(engine)
    created = _new(service)
    service.start_run(created.run.id, worker="w")
    service.request_cancel(created.task.id)
    assert service.get(created.task.id).status == "running"
    assert service.heartbeat(created.run.id) is True


def test_retry_starts_a_new_attempt_only_after_the_task_ended(engine):
    service = TaskService(engine)
    created = _new(service)
    with pytest.raises(IllegalTransition):
        service.retry(created.task.id)
    service.start_run(created.run.id, worker="w")
    service.finish(created.run.id, Status.TIMED_OUT, reason="took longer than 30 minutes")
    again = service.retry(created.task.id)
    assert again.run.attempt == 2 and again.task.status == "queued" and again.task.status_reason is None


def test_runs_without_a_recent_heartbeat_are_found_as_dead(engine):
    service = TaskService(engine)
    alive, dead = _new(service, 1), _new(service, 2)
    service.start_run(alive.run.id, worker="w")
    service.start_run(dead.run.id, worker="w")
    from app.models import utcnow
    service.update_run(dead.run.id, heartbeat_at=utcnow() - timedelta(minutes=5))
    assert [r.id for r in service.dead_runs(timedelta(seconds=60))] == [dead.run.id]


def test_status_never_changes_through_plain_updates(engine):
    service = TaskService(engine)
    created = _new(service)
    with pytest.raises(ValueError):
        service.update(created.task.id, status="succeeded")
    with pytest.raises(ValueError):
        service.update_run(created.run.id, status="succeeded")


def test_usage_costs_add_up_per_installation_and_day(engine):
    service = TaskService(engine)
    a = _new(service, 1)
    b = _new(service, 2)
    other = _new(service, 3, installation_id=2)
    service.update_run(a.run.id, cost_usd=0.25)
    service.update_run(b.run.id, cost_usd=0.5)
    service.update_run(other.run.id, cost_usd=9.0)
    from app.models import utcnow
    since = utcnow() - timedelta(hours=1)
    assert service.cost_since(1, since) == pytest.approx(0.75)
    assert service.count_since(1, since) == 2
    assert isinstance(service.get_run(a.run.id), Run)


def test_queued_runs_that_never_started_are_found_but_not_those_waiting_behind_a_running_task(engine):
    from app.models import utcnow

    service = TaskService(engine)
    lost = _new(service, 1)
    running = _new(service, 2)
    service.start_run(running.run.id, worker="w")
    waiting = _new(service, 2)  # queued behind the running task on the same issue
    fresh = _new(service, 3)
    for created in (lost, waiting):
        service.update_run(created.run.id, queued_at=utcnow() - timedelta(minutes=20))
    stranded = service.stranded_queued_runs(timedelta(minutes=10))
    assert [run.id for run in stranded] == [lost.run.id]
    assert fresh.run.id not in [run.id for run in stranded]


def test_a_free_slot_takes_another_installations_run_before_a_busy_installations_backlog(engine):
    service = TaskService(engine)
    backlog = [_new(service, number) for number in range(1, 6)]
    assert service.claim_next_run("w", None).run.id == backlog[0].run.id
    theirs = _new(service, 1, installation_id=2, repo_full_name="beta/web")
    assert service.runs_ahead(theirs.run.id) == 0
    assert service.runs_ahead(backlog[-1].run.id) == 4
    assert service.claim_next_run("w", None).run.id == theirs.run.id
    assert service.claim_next_run("w", None).run.id == backlog[1].run.id


def test_a_claim_passes_over_an_installation_at_its_limit_and_a_second_task_on_one_issue(engine):
    service = TaskService(engine)
    first = _new(service, 1)
    _new(service, 1)  # queued behind the first on the same issue
    other_issue = _new(service, 2)
    assert service.claim_next_run("w", 1).run.id == first.run.id
    assert service.claim_next_run("w", 1) is None  # installation 1 runs its one task at once
    assert service.claim_next_run("w", 2).run.id == other_issue.run.id
    assert service.claim_next_run("w", None) is None  # the same issue's next waits for the first to end


def test_two_slots_taking_the_same_run_at_once_start_it_once(engine):
    import threading

    service = TaskService(engine)
    for number in range(10):
        created = _new(service, number)
        barrier = threading.Barrier(2)
        won = []

        def take():
            barrier.wait()
            won.append(service.start_run(created.run.id, worker=threading.current_thread().name))

        threads = [threading.Thread(target=take) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len([started for started in won if started is not None]) == 1
        assert service.get_run(created.run.id).status == "running"


def test_no_slot_takes_a_run_its_intake_is_still_setting_up(engine):
    service = TaskService(engine)
    held = service.create(installation_id=1, repo_full_name="octo/demo", issue_number=1, requester="alice",
                          trigger="assignment", agent="command")
    assert service.claim_next_run("w", None) is None  # the draft PR may be opening right now
    assert service.runs_ahead(held.run.id) == 0  # its place is still known, for the progress comment
    service.release_run(held.run.id)
    assert service.claim_next_run("w", None).run.id == held.run.id


def test_a_run_whose_intake_gave_up_is_released_after_a_while(engine):
    from app.models import utcnow

    service = TaskService(engine)
    held = service.create(installation_id=1, repo_full_name="octo/demo", issue_number=1, requester="alice",
                          trigger="assignment", agent="command")
    assert service.release_abandoned_runs(timedelta(minutes=15)) == 0
    service.update_run(held.run.id, queued_at=utcnow() - timedelta(minutes=20))
    assert service.release_abandoned_runs(timedelta(minutes=15)) == 1
    assert service.claim_next_run("w", None).run.id == held.run.id


def test_a_held_run_keeps_its_issues_place_so_the_task_behind_it_waits(engine):
    service = TaskService(engine)
    first = service.create(installation_id=1, repo_full_name="octo/demo", issue_number=1, requester="alice",
                           trigger="assignment", agent="command")  # its intake is still opening the draft
    _new(service, 1)  # queued behind it on the same issue
    assert service.claim_next_run("w", None) is None
    service.release_run(first.run.id)
    assert service.claim_next_run("w", None).run.id == first.run.id
