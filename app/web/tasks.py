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
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from app.db import session_scope
from app.models import LogLine, Run, Task
from app.engines.logsink import read_logs
from app.tasks.links import valid_task_token
from app.tasks.states import is_terminal

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


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Draftsmith task {id}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:80em}}
pre{{background:#0d1117;color:#e6edf3;padding:1em;overflow:auto;white-space:pre-wrap}}
.stderr{{color:#ffa198}}.system{{color:#79c0ff}}</style></head>
<body><h1>{title}</h1>
<p>{repo} #{number} · requested by {requester} · status <strong id="status">{status}</strong>{reason}{pr}</p>
<pre id="log">{lines}</pre>
<script>
const log = document.getElementById("log"), statusEl = document.getElementById("status");
const source = new EventSource("/api/tasks/{id}/logs?after={after}&token={token}");
source.addEventListener("line", (e) => {{
  const line = JSON.parse(e.data), span = document.createElement("span");
  span.className = line.stream; span.textContent = line.text + "\\n"; log.appendChild(span);
}});
source.addEventListener("end", (e) => {{ statusEl.textContent = JSON.parse(e.data).status; source.close(); }});
</script></body></html>
"""


async def task_page(request: Request) -> Response:
    """What the check run's "details" link opens: the task's state and its live log."""
    engine = _engine(request)
    task_id = request.path_params["task_id"]
    if not _authorised(request, task_id):
        return HTMLResponse(f"<h1>No task {task_id}</h1>", status_code=404)
    task, run = await run_in_threadpool(_load, engine, task_id, None)
    if task is None:
        return HTMLResponse(f"<h1>No task {task_id}</h1>", status_code=404)
    lines = await run_in_threadpool(read_logs, engine, run.id, 0, PAGE_SIZE) if run else []
    rendered = "".join(
        f'<span class="{html.escape(line.stream)}">{html.escape(line.text)}\n</span>' for line in lines
    )
    page = _PAGE.format(
        id=task.id,
        title=html.escape(task.title or f"Task {task.id}"),
        repo=html.escape(task.repo_full_name),
        number=task.issue_number,
        requester=html.escape(task.requester),
        status=html.escape(run.status if run else task.status),
        reason=f" ({html.escape(task.status_reason)})" if task.status_reason else "",
        pr=f" · pull request #{task.pr_number}" if task.pr_number else "",
        lines=rendered,
        after=lines[-1].seq if lines else 0,
        token=html.escape(request.query_params.get("token", "")),
    )
    return HTMLResponse(page)


routes = [
    Route("/api/tasks/{task_id:int}/logs", task_logs, methods=["GET"]),
    Route("/tasks/{task_id:int}", task_page, methods=["GET"]),
]
