"""The logs API returns a run's lines after a sequence number, as JSON and as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest
from dramatiq.brokers.stub import StubBroker
from starlette.applications import Starlette

from app.db import session_scope
from app.models import Run, Task
from app.engines.logsink import LogSink
from app.runtime import Runtime
from app.settings import Settings
from app.tasks.links import task_token
from app.web.tasks import routes


SECRET = "webhook-secret"


def _app(engine) -> Starlette:
    # Built from the module's routes alone, as create_app mounts them.
    app = Starlette(routes=routes)
    app.state.runtime = Runtime(settings=Settings(GITHUB_WEBHOOK_SECRET=SECRET), engine=engine, broker=StubBroker(),
                                github=None)
    return app


class _SignedClient(httpx.AsyncClient):
    """Follows links as report.py writes them: each task URL carries that task's token."""

    async def get(self, url, *, params=None, **kwargs):
        task_id = int(str(url).split("/tasks/")[1].split("/")[0])
        return await super().get(url, params={**(params or {}), "token": task_token(SECRET, task_id)}, **kwargs)


@pytest.fixture
def client(engine):
    return _SignedClient(transport=httpx.ASGITransport(app=_app(engine)), base_url="http://draftsmith.test")


async def test_a_link_without_its_tasks_token_finds_nothing(engine):
    task_id, run_id = make_task(engine)
    write_lines(engine, run_id, ["private output"])
    plain = httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(engine)), base_url="http://draftsmith.test")
    other_token = task_token(SECRET, task_id + 1)
    for params in ({}, {"token": "0" * 32}, {"token": other_token}):
        logs = await plain.get(f"/api/tasks/{task_id}/logs", params=params)
        page = await plain.get(f"/tasks/{task_id}", params=params)
        assert (logs.status_code, page.status_code) == (404, 404)
        assert "private output" not in logs.text + page.text
    signed = await plain.get(f"/api/tasks/{task_id}/logs", params={"token": task_token(SECRET, task_id)})
    assert [line["text"] for line in signed.json()["lines"]] == ["private output"]


def make_task(engine, run_status: str = "running", title: str = "Fix typo") -> tuple[int, int]:
    with session_scope(engine) as session:
        task = Task(installation_id=1, repo_full_name="octo/demo", issue_number=7, requester="alice",
                    trigger="assignment", title=title, status="running")
        session.add(task)
        session.flush()
        run = Run(task_id=task.id, status=run_status)
        session.add(run)
        session.flush()
        return task.id, run.id


def set_run_status(engine, run_id: int, status: str) -> None:
    with session_scope(engine) as session:
        run = session.get(Run, run_id)
        run.status = status
        session.add(run)


def write_lines(engine, run_id: int, lines: list[str]) -> None:
    with LogSink(engine, run_id, secrets=["the-model-key"]) as sink:
        for line in lines:
            sink.write("stdout", line)


async def test_json_returns_lines_after_the_given_sequence_in_order(client, engine):
    task_id, run_id = make_task(engine)
    write_lines(engine, run_id, [f"step {i}" for i in range(1, 8)])

    response = await client.get(f"/api/tasks/{task_id}/logs", params={"after": 3})

    assert response.status_code == 200
    body = response.json()
    assert [line["seq"] for line in body["lines"]] == [4, 5, 6, 7]
    assert [line["text"] for line in body["lines"]] == ["step 4", "step 5", "step 6", "step 7"]
    assert body["next_after"] == 7 and body["run_id"] == run_id
    assert body["status"] == "running" and body["finished"] is False

    again = (await client.get(f"/api/tasks/{task_id}/logs", params={"after": body["next_after"]})).json()
    assert again["lines"] == [] and again["next_after"] == 7


async def test_stored_lines_come_back_scrubbed(client, engine):
    task_id, run_id = make_task(engine)
    write_lines(engine, run_id, ["calling with the-model-key"])

    body = (await client.get(f"/api/tasks/{task_id}/logs")).json()

    assert body["lines"][0]["text"] == "calling with [redacted]"


async def test_unknown_task_and_bad_parameters_are_refused(client, engine):
    task_id, _ = make_task(engine)

    assert (await client.get("/api/tasks/999999/logs")).status_code == 404
    assert (await client.get(f"/api/tasks/{task_id}/logs", params={"after": "x"})).status_code == 400
    assert (await client.get(f"/api/tasks/{task_id}/logs", params={"run": 999999})).status_code == 404


def parse_sse(text: str) -> list[dict]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for raw in block.split("\n"):
            key, _, value = raw.partition(":")
            if key in ("event", "id", "data"):
                fields[key] = value[1:] if value.startswith(" ") else value
        if "event" in fields:
            events.append(fields)
    return events


async def test_event_stream_follows_a_running_task_until_it_ends(client, engine):
    task_id, run_id = make_task(engine)
    write_lines(engine, run_id, ["already there 1", "already there 2"])

    def agent_keeps_working() -> None:
        write_lines(engine, run_id, ["written while streaming"])
        set_run_status(engine, run_id, "succeeded")

    threading.Timer(0.6, agent_keeps_working).start()
    response = await asyncio.wait_for(
        client.get(f"/api/tasks/{task_id}/logs", params={"after": 1}, headers={"Accept": "text/event-stream"}),
        timeout=15,
    )

    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    lines = [event for event in events if event["event"] == "line"]
    assert [json.loads(event["data"])["text"] for event in lines] == ["already there 2", "written while streaming"]
    assert [event["id"] for event in lines] == ["2", "3"]
    assert events[-1]["event"] == "end" and json.loads(events[-1]["data"]) == {"status": "succeeded"}


async def test_a_reconnecting_event_source_resumes_after_its_last_event_id(client, engine):
    task_id, run_id = make_task(engine, run_status="failed")
    write_lines(engine, run_id, ["one", "two", "three"])

    response = await client.get(f"/api/tasks/{task_id}/logs",
                                headers={"Accept": "text/event-stream", "Last-Event-ID": "2"})

    texts = [json.loads(e["data"])["text"] for e in parse_sse(response.text) if e["event"] == "line"]
    assert texts == ["three"]


async def test_task_page_shows_status_and_escaped_log(client, engine):
    task_id, run_id = make_task(engine, title="Fix <b>typo</b>")
    write_lines(engine, run_id, ["<script>alert(1)</script>"])

    response = await client.get(f"/tasks/{task_id}")

    assert response.status_code == 200
    assert "Fix &lt;b&gt;typo&lt;/b&gt;" in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert "<script>alert(1)" not in response.text
    assert f"/api/tasks/{task_id}/logs?after=1&token={task_token(SECRET, task_id)}" in response.text
    assert (await client.get("/tasks/999999")).status_code == 404
