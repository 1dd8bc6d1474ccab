"""The dashboard's task pages: the list across a person's repositories, one task, its live log, Cancel and Retry."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from githubkit.exception import GitHubException
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from app import policy
from app.agents import registry
from app.engines.logsink import read_logs
from app.events.event import Event
from app.github.client import git_origin
from app.logs import get_logger
from app.models import Task
from app.tasks.service import TaskService
from app.tasks.states import ACTIVE, Status, is_terminal
from app.web import tasks as signed_task_page
from app.web.dashboard import common, present, queries
from app.web.dashboard.reach import Reach, RepoAccess
from app.web.dashboard.session import Session, csrf_ok

LOG_LINES_ON_PAGE = 1000


def _engine(request: Request):
    return request.app.state.runtime.engine


async def _signed_in(request: Request, *, fresh: bool = False) -> tuple[Session, Reach] | Response:
    session = common.session_of(request)
    if session is None:
        return common.sign_in_redirect(request)
    try:
        return session, await common.reach_of(request, session, fresh=fresh)
    except common.SignedOut:
        return common.sign_in_redirect(request)
    except GitHubException as exc:  # GitHub down or slow: say so rather than answer 500
        get_logger().warning("dashboard_reach_failed", login=session.login, error_type=type(exc).__name__)
        return common.message(request, session, "GitHub did not answer",
                              "The dashboard asks GitHub which repositories you reach, and GitHub did not answer. "
                              "Try again in a moment.", status_code=502)


def _filters(request: Request) -> queries.Filters:
    query = request.query_params
    page = query.get("page", "1")
    return queries.Filters(repo=query.get("repo") or None, status=query.get("status") or None,
                           agent=query.get("agent") or None, requester=(query.get("requester") or "").strip() or None,
                           page=int(page) if page.isdigit() and int(page) > 0 else 1)


async def task_list(request: Request) -> Response:
    """`GET /dashboard/`: the tasks of every repository the person reaches, newest first, filterable."""
    if common.session_of(request) is None:
        return common.page(request, None, "Sign in", "signin.html")
    signed = await _signed_in(request)
    if isinstance(signed, Response):
        return signed
    session, reach = signed
    filters = _filters(request)
    rows, more = await run_in_threadpool(queries.list_tasks, _engine(request), reach.scopes(), filters)
    query = {k: v for k, v in (("repo", filters.repo), ("status", filters.status), ("agent", filters.agent),
                               ("requester", filters.requester)) if v}
    return common.page(request, session, "Tasks", "tasks.html", rows=rows, filters=filters, more=more,
                       repos=sorted(r.full_name for r in reach.repos.values()), statuses=[s.value for s in Status],
                       agents=registry.names(), query=query, web=git_origin(request.app.state.runtime.settings.github_api_url),
                       installations=reach.installations)


@dataclass(frozen=True)
class Visible:
    session: Session
    reach: Reach
    access: RepoAccess
    task: Task


async def _visible(request: Request, *, fresh: bool = False) -> Visible | Response:
    """The task of the path, if the person's token reaches its repository in its installation; else 404."""
    signed = await _signed_in(request, fresh=fresh)
    if isinstance(signed, Response):
        return signed
    session, reach = signed
    task = await run_in_threadpool(queries.get_task, _engine(request), request.path_params["task_id"])
    access = reach.repo(task.repo_full_name, task.installation_id) if task is not None else None
    if task is None or access is None:  # 404 either way: don't confirm which task ids exist elsewhere
        return common.not_found(request, session, "task")
    return Visible(session, reach, access, task)


async def task_page(request: Request) -> Response:
    """`GET /dashboard/tasks/{id}`: status and stage, checklist, runs, live log, diffs, links and buttons."""
    visible = await _visible(request)
    if isinstance(visible, Response):
        return visible
    detail = await run_in_threadpool(queries.task_detail, _engine(request), visible.task.id)
    task, runs = detail.task, detail.runs
    latest = runs[-1] if runs else None
    lines = await run_in_threadpool(read_logs, _engine(request), latest.id, 0, LOG_LINES_ON_PAGE) if latest else []
    ahead = (await run_in_threadpool(TaskService(_engine(request)).runs_ahead, latest.id)
             if latest is not None and latest.status == Status.QUEUED.value else None)
    web = git_origin(request.app.state.runtime.settings.github_api_url)
    repo_url = f"{web}/{task.repo_full_name}"
    may_act = visible.access.at_least("write")
    return common.page(
        request, visible.session, task.title or f"Task {task.id}", "task.html", task=task, runs=runs, latest=latest,
        lines=lines, after=lines[-1].seq if lines else 0, checklist=present.checklist(task, latest),
        diffs=[(run, present.split_diff(detail.diffs[run.id])) for run in runs if detail.diffs.get(run.id)],
        repo_url=repo_url, kind="pull" if task.is_pull_request else "issues", may_act=may_act,
        can_cancel=task.status in {s.value for s in ACTIVE}, can_retry=is_terminal(task.status),
        finished=is_terminal(latest.status) if latest else is_terminal(task.status),
        run_seconds=queries.run_seconds, notice=request.query_params.get("done"), ahead=ahead)


async def task_logs(request: Request) -> Response:
    """`GET /dashboard/tasks/{id}/logs`: the signed task page's logs API (JSON or SSE), for a signed-in person."""
    session = common.session_of(request)
    if session is None:
        return JSONResponse({"error": "sign in first"}, status_code=401)
    visible = await _visible(request)
    if isinstance(visible, Response):
        return JSONResponse({"error": f"no task {request.path_params['task_id']}"}, status_code=404)
    return await signed_task_page.logs_response(request, _engine(request), visible.task.id)


def _context(request: Request, session: Session, access: RepoAccess, task: Task, verb: str):
    """A handler Context for a button pressed on the dashboard, as for a check run's button: the same
    verbs, task service, reporting and audit entry (its source reads "dashboard cancel on #N")."""
    from app.handlers.context import Context

    runtime = request.app.state.runtime
    event = Event("dashboard", f"dashboard-{uuid.uuid4()}", {
        "action": verb,
        "sender": {"login": session.login, "id": session.user_id, "type": "User"},
        "repository": {"full_name": task.repo_full_name, "default_branch": access.default_branch},
        "installation": {"id": task.installation_id},
    })
    return Context.for_event(event, runtime)


async def _act(request: Request, verb: str) -> Response:
    session = common.session_of(request)
    form = await common.form(request)
    if session is None or not csrf_ok(session, form.get("csrf")):
        return common.forbidden_form(request, session)
    # What the person reaches is asked of GitHub again, whatever the cache holds.
    visible = await _visible(request, fresh=True)
    if isinstance(visible, Response):
        return visible
    task, access = visible.task, visible.access
    ctx = _context(request, session, access, task, verb)
    if await ctx.identity() is None or ctx.gh is None:
        return common.message(request, session, "GitHub is not reachable", "The App is not configured, so nothing "
                              "can be changed from here.", status_code=503)
    loaded = await ctx.config.load()
    # The rule the check run's buttons follow (app.handlers.check_runs): the repository's required_permission.
    required = loaded.config.required_permission
    if not policy.has_permission(await ctx.permission(session.login), required):
        return common.message(request, session, "Not allowed",
                              f"@{session.login} needs {required} access to {task.repo_full_name} to {verb} its "
                              "tasks. Nothing was changed.", status_code=403,
                              link=(f"/dashboard/tasks/{task.id}", "Back to the task"))
    from app.commands.verbs import cancel_active, retry_latest

    latest_id = await run_in_threadpool(queries.latest_task_id, _engine(request), task.repo_full_name,
                                        task.issue_number)
    if verb == "cancel":
        if task.status not in {s.value for s in ACTIVE}:
            return _back(task, "not-active")
        await cancel_active(ctx, task.repo_full_name, task.issue_number, comment_id=None,
                            reason=f"cancelled by @{session.login} from the dashboard")
    else:
        if not is_terminal(task.status) or latest_id != task.id:  # the verbs retry the issue's newest task
            return _back(task, "not-retryable")
        await retry_latest(ctx, task.repo_full_name, task.issue_number, comment_id=None,
                           prefix=loaded.config.command_prefix)
    return _back(task, {"cancel": "cancelled", "retry": "retried"}[verb])


def _back(task: Task, done: str) -> Response:
    return RedirectResponse(f"/dashboard/tasks/{task.id}?done={done}", status_code=303)


async def cancel(request: Request) -> Response:
    return await _act(request, "cancel")


async def retry(request: Request) -> Response:
    return await _act(request, "retry")
