"""POST /api/runs/{id}/events: who may report, what is stored, and that a result reaches the app once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from app.db import session_scope
from app.models import LogLine, Run
from app.engines.actions import callback_tokens
from tests.actions._oidc_issuer import forged_key
from tests.actions.conftest import make_task_and_run


def _logs(engine, run_id):
    with session_scope(engine) as session:
        return [(line.seq, line.stream, line.text) for line in
                session.exec(select(LogLine).where(LogLine.run_id == run_id).order_by(LogLine.seq))]


def _link_actions_run(engine, run_id: int, actions_run_id: int) -> None:
    """What the workflow_run webhook does once GitHub has started the dispatched workflow."""
    with session_scope(engine) as session:
        session.get(Run, run_id).actions_run_id = actions_run_id


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


RESULT = {"type": "result", "success": True, "summary": "Fixed it", "patch": "diff --git a/x b/x\n",
          "usage": {"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.01}, "exit_code": 0, "tests_passed": True}


async def test_logs_and_progress_are_stored_in_order_and_secrets_scrubbed(client, engine, handler):
    run_id = make_task_and_run(engine)
    token = callback_tokens.issue(engine, run_id, timedelta(minutes=40))

    first = await client.post(f"/api/runs/{run_id}/events", headers=_bearer(token), json={"events": [
        {"type": "progress", "stage": "agent_started"},
        {"type": "log", "stream": "stdout", "text": "editing README with key sk-abcdefghijklmnopqrstuvwx"},
    ]})
    second = await client.post(f"/api/runs/{run_id}/events", headers=_bearer(token), json={"events": [
        {"type": "log", "stream": "stderr", "text": f"oops hunter2-secret {token}"},
    ]})

    assert first.status_code == 200 and second.status_code == 200
    assert handler.stages == [(run_id, "agent_started")]
    logs = _logs(engine, run_id)
    assert [seq for seq, _, _ in logs] == [1, 2, 3]
    assert logs[0] == (1, "system", "stage: agent_started")
    assert logs[1][1:] == ("stdout", "editing README with key [redacted]")
    assert logs[2][1:] == ("stderr", "oops [redacted] [redacted]")


async def test_a_result_reaches_the_handler_exactly_once(client, engine, handler):
    run_id = make_task_and_run(engine)
    token = callback_tokens.issue(engine, run_id, timedelta(minutes=40))

    first = await client.post(f"/api/runs/{run_id}/events", headers=_bearer(token), json={"events": [RESULT]})
    replay = await client.post(f"/api/runs/{run_id}/events", headers=_bearer(token), json={"events": [RESULT]})
    late_log = await client.post(f"/api/runs/{run_id}/events", headers=_bearer(token),
                                 json={"events": [{"type": "log", "text": "late"}]})

    assert first.status_code == 200
    assert replay.status_code == 401 and late_log.status_code == 401
    assert len(handler.results) == 1
    got_run, result = handler.results[0]
    assert got_run == run_id
    assert (result.success, result.patch, result.usage.cost_usd, result.tests_passed) == (
        True, "diff --git a/x b/x\n", 0.01, True)
    assert _logs(engine, run_id) == []


async def test_a_result_the_app_fails_to_handle_can_be_retried(client, engine, handler):
    run_id = make_task_and_run(engine)
    token = callback_tokens.issue(engine, run_id, timedelta(minutes=40))
    handler.fail_next_result = True

    failed = await client.post(f"/api/runs/{run_id}/events", headers=_bearer(token), json={"events": [RESULT]})
    retried = await client.post(f"/api/runs/{run_id}/events", headers=_bearer(token), json={"events": [RESULT]})

    assert failed.status_code == 503
    assert retried.status_code == 200
    assert len(handler.results) == 1


# The auth matrix is about the endpoint's decisions; token storage is covered on both databases elsewhere.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "credential",
    ["wrong", "reused", "expired", "other-run", "missing", "basic-auth", "oidc-other-repo", "oidc-other-audience",
     "oidc-unsigned", "oidc-forged", "oidc-expired", "oidc-manual-try", "oidc-other-actions-run"],
)
async def test_refused_callbacks_change_nothing(client, engine, handler, issuer, credential):
    run_id = make_task_and_run(engine)
    other_run = make_task_and_run(engine)
    _link_actions_run(engine, run_id, 4001)
    token = callback_tokens.issue(engine, run_id, timedelta(minutes=40))
    headers = {
        "wrong": _bearer("dsr_" + "A" * 43),
        "reused": _bearer(token),
        "expired": _bearer(callback_tokens.issue(engine, run_id, timedelta(seconds=-1))),
        "other-run": _bearer(callback_tokens.issue(engine, other_run, timedelta(minutes=40))),
        "missing": {},
        "basic-auth": {"Authorization": "Basic eC1hY2Nlc3MtdG9rZW46eA=="},
        "oidc-other-repo": _bearer(issuer.token(repository="mallory/demo")),
        "oidc-other-audience": _bearer(issuer.token(aud="https://elsewhere.example")),
        "oidc-unsigned": _bearer(issuer.token(alg="none")),
        "oidc-forged": _bearer(issuer.token(key=forged_key())),
        "oidc-expired": _bearer(issuer.token(exp=1_000_000, iat=999_000)),
        # any workflow in the repository can mint a token: a manual run of ours, or another Actions run
        "oidc-manual-try": _bearer(issuer.token(event_name="workflow_dispatch", run_id="4001")),
        "oidc-other-actions-run": _bearer(issuer.token(run_id="4002")),
    }[credential]
    if credential == "reused":
        assert (await client.post(f"/api/runs/{run_id}/events", headers=headers,
                                  json={"events": [RESULT]})).status_code == 200
        handler.results.clear()

    response = await client.post(f"/api/runs/{run_id}/events", headers=headers, json={"events": [
        {"type": "progress", "stage": "agent_started"}, {"type": "log", "text": "hello"}, RESULT]})

    forbidden = ("oidc-other-repo", "oidc-manual-try", "oidc-other-actions-run")
    assert response.status_code == (403 if credential in forbidden else 401), response.text
    assert handler.results == [] and handler.stages == []
    assert _logs(engine, run_id) == []
    if credential not in ("reused",):
        assert callback_tokens.verify(engine, run_id, token, consume=False)  # the real token still works


async def test_an_oidc_token_from_the_tasks_repository_is_accepted_and_closes_the_run(client, engine, handler, issuer):
    run_id = make_task_and_run(engine)
    token = callback_tokens.issue(engine, run_id, timedelta(minutes=40))  # issued, but never sent
    ours = issuer.token(run_id="4001")

    # before the workflow_run webhook links the Actions run, and after
    logs = await client.post(f"/api/runs/{run_id}/events", headers=_bearer(ours),
                             json={"events": [{"type": "log", "text": "hi"}]})
    _link_actions_run(engine, run_id, 4001)
    result = await client.post(f"/api/runs/{run_id}/events", headers=_bearer(ours),
                               json={"events": [RESULT]})
    replay = await client.post(f"/api/runs/{run_id}/events", headers=_bearer(ours),
                               json={"events": [RESULT]})

    assert (logs.status_code, result.status_code, replay.status_code) == (200, 200, 401)
    assert len(handler.results) == 1
    assert not callback_tokens.verify(engine, run_id, token, consume=False)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("body", [
    {"events": [RESULT, {"type": "log", "text": "after the result"}]},
    {"events": [RESULT, RESULT]},
    {"events": [{"type": "progress", "stage": "Not A Stage!"}]},
    {"events": [{"type": "teleport"}]},
    {"nothing": []},
])
async def test_malformed_batches_are_rejected_without_consuming_the_token(client, engine, handler, body):
    run_id = make_task_and_run(engine)
    token = callback_tokens.issue(engine, run_id, timedelta(minutes=40))

    response = await client.post(f"/api/runs/{run_id}/events", headers=_bearer(token), json=body)

    assert response.status_code == 422
    assert handler.results == [] and _logs(engine, run_id) == []
    assert callback_tokens.verify(engine, run_id, token, consume=False)


async def test_the_log_cap_keeps_a_run_from_filling_the_database(engine, handler):
    import httpx
    from starlette.applications import Starlette

    from app.engines.actions.callbacks import RunCallbacks, make_routes

    app = Starlette(routes=make_routes(RunCallbacks(engine=engine, handler=handler, max_log_lines_per_run=5)))
    run_id = make_task_and_run(engine)
    token = callback_tokens.issue(engine, run_id, 600)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        for batch in range(3):
            await client.post(f"/api/runs/{run_id}/events", headers=_bearer(token),
                              json={"events": [{"type": "log", "text": f"{batch}-{i}"} for i in range(3)]})
    logs = _logs(engine, run_id)
    assert len(logs) == 5
    assert logs[-1][2] == "log limit reached; later lines dropped"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_module_routes_find_their_wiring_on_the_app_state_or_say_they_have_none(engine, handler):
    import httpx
    from starlette.applications import Starlette

    from app.engines.actions.callbacks import RunCallbacks, routes

    app = Starlette(routes=routes)
    run_id = make_task_and_run(engine)
    token = callback_tokens.issue(engine, run_id, 600)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        unwired = await client.post(f"/api/runs/{run_id}/events", headers=_bearer(token), json={"events": [RESULT]})
        app.state.run_callbacks = RunCallbacks(engine=engine, handler=handler)
        wired = await client.post(f"/api/runs/{run_id}/events", headers=_bearer(token), json={"events": [RESULT]})
    assert (unwired.status_code, wired.status_code) == (503, 200)
    assert len(handler.results) == 1
