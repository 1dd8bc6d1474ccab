"""The task page (`/tasks/{id}`, the check run's details link) and its logs API, as JSON or Server-Sent Events."""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import AsyncIterator

from sqlmodel import select
from sqlalchemy.engine import Engine
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.db import session_scope
from app.models import LogLine, Run, Task
from app.engines.logsink import read_logs
from app.github.client import git_origin
from app.tasks.links import valid_task_token
from app.tasks.states import is_terminal
from app.web import layout

PAGE_SIZE = 1000
# How often an open event stream looks for new lines; the sink stores batches every 0.2 s.
POLL_INTERVAL_S = 0.5


def _engine(request: Request) -> Engine:
    return request.app.state.runtime.engine


def _load(engine: Engine, task_id: int, run_id: int | None) -> tuple[Task | None, Run | None]:
    with session_scope(engine) as session:
        task = session.get(Task, task_id)
        if task is None:
            return None, None
        query = select(Run).where(Run.task_id == task_id)
        query = query.where(Run.id == run_id) if run_id is not None else query.order_by(Run.id.desc()).limit(1)
        return task, session.exec(query).first()


def _line_json(line: LogLine) -> dict:
    return {"seq": line.seq, "stream": line.stream, "text": line.text, "at": line.created_at.isoformat() + "Z"}


def _authorised(request: Request, task_id: int) -> bool:
    """The link's token must be the one report.py put in the check run and comments (see app.tasks.links)."""
    token = request.query_params.get("token")
    # While the webhook secret rotates, links signed with the old one keep working.
    return any(valid_task_token(secret, task_id, token)
               for secret in request.app.state.runtime.settings.webhook_secrets)


def _int_param(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        return None if default is None else -1


def _finished(task: Task, run: Run | None) -> bool:
    return is_terminal(run.status) if run is not None else is_terminal(task.status)


async def task_logs(request: Request) -> Response:
    """`GET /api/tasks/{id}/logs?after=SEQ[&run=ID][&limit=N]`: lines of the task's latest run (or `run`)."""
    engine = _engine(request)
    task_id = request.path_params["task_id"]
    if not _authorised(request, task_id):  # 404, not 403: don't confirm which task ids exist
        return JSONResponse({"error": f"no task {task_id}"}, status_code=404)
    return await logs_response(request, engine, task_id)


async def logs_response(request: Request, engine: Engine, task_id: int) -> Response:
    """The logs of a task the caller may read, as JSON or (Accept: text/event-stream) Server-Sent Events;
    the dashboard answers its own logs route with this once the person is found to reach the task."""
    after = _int_param(request, "after", 0)
    limit = _int_param(request, "limit", PAGE_SIZE)
    run_param = _int_param(request, "run", None)
    if after is None or after < 0 or limit is None or limit < 1:
        return JSONResponse({"error": "after and limit must be non-negative integers"}, status_code=400)
    if request.query_params.get("run") and run_param is None:
        return JSONResponse({"error": "run must be an integer"}, status_code=400)
    task, run = await run_in_threadpool(_load, engine, task_id, run_param)
    if task is None or (run_param is not None and run is None):
        return JSONResponse({"error": f"no task {task_id}" if task is None else f"no run {run_param}"}, status_code=404)

    if "text/event-stream" in request.headers.get("accept", ""):
        last_event_id = request.headers.get("last-event-id", "")
        if last_event_id.isdigit():  # a reconnecting EventSource resumes where it stopped
            after = int(last_event_id)
        return EventSourceResponse(_stream(request, engine, task_id, run.id if run else None, after), ping=15)

    lines = await run_in_threadpool(read_logs, engine, run.id, after, min(limit, PAGE_SIZE)) if run else []
    return JSONResponse(
        {
            "task_id": task.id,
            "run_id": run.id if run else None,
            "status": run.status if run else task.status,
            "finished": _finished(task, run),
            "lines": [_line_json(line) for line in lines],
            "next_after": lines[-1].seq if lines else after,
        }
    )


async def _stream(request: Request, engine: Engine, task_id: int, run_id: int | None, after: int) -> AsyncIterator[dict]:
    while True:
        if run_id is None:  # queued task: its first run may not exist yet
            _task, run = await run_in_threadpool(_load, engine, task_id, None)
            run_id = run.id if run else None
        lines = await run_in_threadpool(read_logs, engine, run_id, after, PAGE_SIZE) if run_id else []
        for line in lines:
            after = line.seq
            yield {"event": "line", "id": str(line.seq), "data": json.dumps(_line_json(line))}
        if len(lines) == PAGE_SIZE:
            continue
        task, run = await run_in_threadpool(_load, engine, task_id, run_id)
        if task is None or _finished(task, run):
            # Lines stored between the read above and the status check must not be lost.
            tail = await run_in_threadpool(read_logs, engine, run_id, after, PAGE_SIZE) if run_id else []
            for line in tail:
                after = line.seq
                yield {"event": "line", "id": str(line.seq), "data": json.dumps(_line_json(line))}
            status = run.status if run else (task.status if task else "gone")
            yield {"event": "end", "data": json.dumps({"status": status})}
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL_INTERVAL_S)


_SCRIPT = """<script>
const log = document.getElementById("log"), statusEl = document.getElementById("status");
const source = new EventSource("/api/tasks/{id}/logs?after={after}&token={token}");
source.addEventListener("line", (e) => {{
  const line = JSON.parse(e.data), span = document.createElement("span");
  const follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  span.className = line.stream; span.textContent = line.text + "\\n"; log.appendChild(span);
  if (follow) log.scrollTop = log.scrollHeight;
}});
source.addEventListener("end", (e) => {{
  const status = JSON.parse(e.data).status;
  statusEl.textContent = status.replace("_", " "); statusEl.className = "status " + status; source.close();
}});
</script>"""


def _fact(name: str, value: str) -> str:
    return f"<dt>{name}</dt><dd>{value}</dd>"


def _task_body(task: Task, run: Run | None, lines: list[LogLine], *, web_url: str, token: str) -> str:
    status = run.status if run else task.status
    repo_url = f"{web_url}/{html.escape(task.repo_full_name)}"
    kind = "pull" if task.is_pull_request else "issues"
    facts = [
        _fact("Status", f'<span id="status" class="status {html.escape(status)}">{html.escape(status.replace("_", " "))}'
                        "</span>" + (f" {html.escape(task.status_reason)}" if task.status_reason else "")),
        _fact("Repository", f'<a href="{repo_url}">{html.escape(task.repo_full_name)}</a>'),
        _fact("Asked on", f'<a href="{repo_url}/{kind}/{task.issue_number}">#{task.issue_number}</a> by '
                          f"@{html.escape(task.requester)}"),
    ]
    if task.pr_number and task.pr_number != task.issue_number:
        facts.append(_fact("Pull request", f'<a href="{repo_url}/pull/{task.pr_number}">#{task.pr_number}</a>'))
    if task.agent:
        facts.append(_fact("Agent", html.escape(task.agent) + (f" · {html.escape(task.model)}" if task.model else "")))
    if run is not None and run.attempt > 1:
        facts.append(_fact("Attempt", str(run.attempt)))
    rendered = "".join(f'<span class="{html.escape(line.stream)}">{html.escape(line.text)}\n</span>' for line in lines)
    return (
        f"<h1>{html.escape(task.title or f'Task {task.id}')}</h1>"
        f'<dl class="facts">{"".join(facts)}</dl>'
        f'<h2>Log</h2><pre class="log" id="log">{rendered}</pre>'
        + _SCRIPT.format(id=task.id, after=lines[-1].seq if lines else 0, token=html.escape(token))
    )


async def task_page(request: Request) -> Response:
    """What the check run's "details" link opens: the task's state and its live log."""
    engine = _engine(request)
    task_id = request.path_params["task_id"]
    missing = layout.page("No such task", f"<h1>No task {task_id}</h1><p>The link may be incomplete: open it "
                                          "from the task's check run or progress comment.</p>", status_code=404)
    if not _authorised(request, task_id):
        return missing
    task, run = await run_in_threadpool(_load, engine, task_id, None)
    if task is None:
        return missing
    lines = await run_in_threadpool(read_logs, engine, run.id, 0, PAGE_SIZE) if run else []
    web_url = git_origin(request.app.state.runtime.settings.github_api_url)
    return layout.page(task.title or f"Task {task.id}",
                       _task_body(task, run, lines, web_url=web_url, token=request.query_params.get("token", "")))


routes = [
    Route("/api/tasks/{task_id:int}/logs", task_logs, methods=["GET"]),
    Route("/tasks/{task_id:int}", task_page, methods=["GET"]),
]
