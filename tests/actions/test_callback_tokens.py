"""Callback credentials: bound to one run, refused when wrong, expired or used, single-use for the result."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlmodel import select

from app.db import session_scope
from app.models import CallbackToken, Run, Task
from app.engines.actions import callback_tokens


@pytest.fixture
def run_ids(engine):
    with session_scope(engine) as session:
        task = Task(installation_id=1, repo_full_name="octo/demo", issue_number=7, requester="alice",
                    trigger="assignment", runner="actions")
        session.add(task)
        session.flush()
        runs = [Run(task_id=task.id), Run(task_id=task.id, attempt=2)]
        session.add_all(runs)
        session.flush()
        return [run.id for run in runs]


def test_a_token_is_good_for_many_events_of_its_run_until_the_result_consumes_it(engine, run_ids):
    token = callback_tokens.issue(engine, run_ids[0], timedelta(minutes=40))

    assert token.startswith("dsr_") and len(token) > 40
    assert callback_tokens.verify(engine, run_ids[0], token, consume=False)
    assert callback_tokens.verify(engine, run_ids[0], token, consume=False)
    assert callback_tokens.verify(engine, run_ids[0], token, consume=True)
    assert not callback_tokens.verify(engine, run_ids[0], token, consume=True)
    assert not callback_tokens.verify(engine, run_ids[0], token, consume=False)


def test_only_the_hash_is_stored(engine, run_ids):
    token = callback_tokens.issue(engine, run_ids[0], 60)
    with session_scope(engine) as session:
        stored = session.exec(select(CallbackToken)).one()
    assert token not in stored.token_hash
    assert stored.token_hash == callback_tokens.hash_token(token)


def test_a_token_for_another_run_is_refused(engine, run_ids):
    token = callback_tokens.issue(engine, run_ids[0], 60)
    assert not callback_tokens.verify(engine, run_ids[1], token, consume=False)
    assert not callback_tokens.verify(engine, run_ids[1], token, consume=True)
    assert callback_tokens.verify(engine, run_ids[0], token, consume=False)


@pytest.mark.parametrize("guess", ["", "dsr_", "dsr_not-the-token", "ghs_abcdef", "Bearer dsr_x"])
def test_wrong_tokens_are_refused(engine, run_ids, guess):
    callback_tokens.issue(engine, run_ids[0], 60)
    assert not callback_tokens.verify(engine, run_ids[0], guess, consume=False)
    assert not callback_tokens.verify(engine, run_ids[0], guess, consume=True)


def test_an_expired_token_is_refused(engine, run_ids):
    token = callback_tokens.issue(engine, run_ids[0], timedelta(seconds=-1))
    assert not callback_tokens.verify(engine, run_ids[0], token, consume=False)
    assert not callback_tokens.verify(engine, run_ids[0], token, consume=True)
    assert not callback_tokens.run_is_open(engine, run_ids[0])


def test_concurrent_results_consume_the_token_once(engine, run_ids):
    token = callback_tokens.issue(engine, run_ids[0], 60)
    wins: list[bool] = []
    barrier = threading.Barrier(6)

    def consume():
        barrier.wait()
        wins.append(callback_tokens.verify(engine, run_ids[0], token, consume=True))

    threads = [threading.Thread(target=consume) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 5 + [True]


def test_the_oidc_path_closes_the_window_once_and_a_failed_result_can_reopen_it(engine, run_ids):
    token = callback_tokens.issue(engine, run_ids[0], 60)
    assert callback_tokens.run_is_open(engine, run_ids[0])
    assert callback_tokens.consume_for_run(engine, run_ids[0])
    assert not callback_tokens.consume_for_run(engine, run_ids[0])
    assert not callback_tokens.run_is_open(engine, run_ids[0])
    assert not callback_tokens.verify(engine, run_ids[0], token, consume=False)

    callback_tokens.release(engine, run_ids[0])
    assert callback_tokens.verify(engine, run_ids[0], token, consume=False)
    assert not callback_tokens.run_is_open(engine, run_ids[1])
