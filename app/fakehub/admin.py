"""The /_fakehub/ admin API (loopback only, no auth): what GitHub has no public endpoint for."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict
from typing import Any, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.fakehub.auth import Principal
from app.fakehub.hub import FakeHub
from app.fakehub.payloads import Renderer
from app.fakehub.routing import Ctx
from app.fakehub.state import CheckRun, CheckSuite, Fault, WorkflowRun, iso, now
from app.fakehub.webhooks import deliver

LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient"}
_routes: list[tuple[str, re.Pattern[str], Callable[..., tuple[int, Any]]]] = []


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def route(method: str, pattern: str):
    def register(handler):
        _routes.append((method, re.compile(pattern), handler))
        return handler

    return register


async def dispatch(hub: FakeHub, request: Request) -> Response:
    if request.client is not None and request.client.host not in LOOPBACK:
        return JSONResponse({"message": "the admin API answers loopback clients only"}, 403)
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return JSONResponse({"message": "Problems parsing JSON"}, 400)
    path = request.url.path.removeprefix("/_fakehub")
    for method, pattern, handler in _routes:
        found = pattern.fullmatch(path)
        if found and method == request.method:
            try:
                status, data = await run_in_threadpool(handler, hub, request, body, **found.groupdict())
            except AdminError as error:
                return JSONResponse({"message": str(error)}, error.status)
            except (KeyError, ValueError, TypeError) as error:
                return JSONResponse({"message": f"bad admin request: {error!r}"}, 400)
            return Response(status_code=204) if data is None else JSONResponse(data, status)
    return JSONResponse({"message": f"no admin route {request.method} {request.url.path}"}, 404)


def acting_ctx(hub: FakeHub, request: Request, login: str | None) -> Ctx:
    user = hub.state.user(login) if login else hub.app.owner
    return Ctx(state=hub.state, render=Renderer(hub.state, str(request.base_url)),
               principal=Principal(kind="user", user=user), params={}, query={}, body={})


def _send(hub: FakeHub, ctx: Ctx) -> list[dict[str, Any]]:
    return [delivery_json(deliver(hub.state, event, payload)) for event, payload in ctx.pending]


def delivery_json(delivery) -> dict[str, Any]:
    data = asdict(delivery)
    data["delivered_at"] = iso(delivery.delivered_at)
    return data


@route("GET", r"/app")
def get_app(hub: FakeHub, request: Request, body: dict) -> tuple[int, Any]:
    app = hub.app
    return 200, {"id": app.id, "slug": app.slug, "bot_login": app.bot.login, "webhook_url": hub.state.webhook_url,
                 "api_url": str(request.base_url).rstrip("/")}


@route("PUT", r"/webhook-url")
def set_webhook_url(hub: FakeHub, request: Request, body: dict) -> tuple[int, Any]:
    hub.state.webhook_url = body.get("url")
    return 200, {"url": hub.state.webhook_url}


@route("POST", r"/repos")
def create_repo(hub: FakeHub, request: Request, body: dict) -> tuple[int, Any]:
    try:
        repo = hub.create_repo(body["owner"], body["name"], body.get("files"), body.get("default_branch", "main"),
                               private=body.get("private", False), install=body.get("install", True))
    except ValueError as error:
        raise AdminError(422, str(error)) from None
    installation = hub.state.installation_for(repo.full_name)
    base = str(request.base_url).rstrip("/")
    return 201, {"full_name": repo.full_name, "id": repo.id, "clone_url": f"{base}/{repo.full_name}.git",
                 "default_branch": repo.default_branch, "installation_id": installation.id if installation else None}


@route("POST", r"/users")
def create_user(hub: FakeHub, request: Request, body: dict) -> tuple[int, Any]:
    try:
        user = hub.add_user(body["login"], body.get("type", "User"), body.get("permissions"))
    except KeyError as error:
        raise AdminError(422, f"unknown repository {error}") from None
    return 201, Renderer(hub.state, str(request.base_url)).user(user)


@route("POST", r"/faults")
def add_fault(hub: FakeHub, request: Request, body: dict) -> tuple[int, Any]:
    """Fail matching API calls: `path` (* wildcards), `method`, `status` (502; 403/429 read as rate limits,
    with `retry_after`), or `hang` seconds first; for the next `count` calls, or every call for `seconds`;
    `every: 2` fails every other matching call; `app_only` spares people acting through X-Fakehub-Actor."""
    # `seconds` bounds the fault in time; with it and no `count`, every matching request until then.
    seconds = body.get("seconds")
    fault = Fault(method=body.get("method", "*"), path=body["path"], status=body.get("status", 502 if not body.get("hang") else 0),
                  count=body.get("count", 1 if seconds is None else None), retry_after=body.get("retry_after"),
                  hang=body.get("hang"), message=body.get("message"), every=int(body.get("every", 1)),
                  until=None if seconds is None else time.monotonic() + float(seconds),
                  app_only=bool(body.get("app_only", False)))
    with hub.state.lock:
        hub.state.faults.append(fault)
    shown = asdict(fault)
    shown.pop("until")
    shown.pop("seen")
    return 201, {**shown, "seconds": seconds}


@route("DELETE", r"/faults")
def clear_faults(hub: FakeHub, request: Request, body: dict) -> tuple[int, Any]:
    with hub.state.lock:
        hub.state.faults.clear()
    return 204, None


@route("GET", r"/deliveries")
def list_deliveries(hub: FakeHub, request: Request, body: dict) -> tuple[int, Any]:
    return 200, [delivery_json(d) for d in list(hub.state.deliveries)]


@route("GET", r"/requests")
def list_requests(hub: FakeHub, request: Request, body: dict) -> tuple[int, Any]:
    # Tokens stay out of the audit list: it is readable without credentials.
    return 200, [{k: v for k, v in asdict(r).items() if k not in ("token", "at")} for r in list(hub.state.requests)]


def _check_run_ctx(hub: FakeHub, request: Request, run_id: str):
    run = hub.state.check_runs.get(int(run_id))
    if run is None:
        raise AdminError(404, f"no check run {run_id}")
    return run, acting_ctx(hub, request, request.headers.get("x-fakehub-actor"))


@route("POST", r"/check-runs/(?P<run_id>\d+)/rerequest")
def rerequest_check_run(hub: FakeHub, request: Request, body: dict, run_id: str) -> tuple[int, Any]:
    """A person clicks "Re-run" on a check run."""
    run, ctx = _check_run_ctx(hub, request, run_id)
    repo = hub.state.repos[run.repo]
    ctx.emit("check_run", ctx.event(repo, "rerequested", check_run=ctx.render.check_run(run)))
    return 200, {"deliveries": _send(hub, ctx)}


@route("POST", r"/check-runs/(?P<run_id>\d+)/request-action")
def request_check_run_action(hub: FakeHub, request: Request, body: dict, run_id: str) -> tuple[int, Any]:
    """A person clicks one of the check run's action buttons."""
    run, ctx = _check_run_ctx(hub, request, run_id)
    identifier = body["identifier"]
    if not any(action.get("identifier") == identifier for action in run.actions):
        raise AdminError(422, f"check run {run_id} has no action {identifier!r}")
    repo = hub.state.repos[run.repo]
    ctx.emit("check_run", ctx.event(repo, "requested_action", check_run=ctx.render.check_run(run),
                                    requested_action={"identifier": identifier}))
    return 200, {"deliveries": _send(hub, ctx)}


@route("POST", r"/installations")
def send_installation_created(hub: FakeHub, request: Request, body: dict) -> tuple[int, Any]:
    """(Re)send installation.created for one account's installation, or for every installation."""
    ctx = acting_ctx(hub, request, body.get("sender"))
    account = body.get("account")
    if account:
        hub.install(account)
    for installation in hub.state.installations.values():
        if account and installation.account.login != account:
            continue
        repos = [hub.state.repos[f] for f in sorted(installation.repos)]
        sender = hub.state.user(body.get("sender") or installation.account.login)
        ctx.emit("installation", {
            "action": "created", "installation": ctx.render.installation(installation),
            "repositories": [{"id": r.id, "node_id": ctx.render.repository(r)["node_id"], "name": r.name,
                              "full_name": r.full_name, "private": r.private} for r in repos],
            "requester": None, "sender": ctx.render.user(sender),
        })
    return 200, {"deliveries": _send(hub, ctx)}


@route("POST", r"/workflow-runs/(?P<run_id>\d+)")
def update_workflow_run(hub: FakeHub, request: Request, body: dict, run_id: str) -> tuple[int, Any]:
    """Move a workflow run along (queued -> in_progress -> completed), as a runner would."""
    run = hub.state.workflow_runs.get(int(run_id))
    if run is None:
        raise AdminError(404, f"no workflow run {run_id}")
    with hub.state.lock:
        run.status = body.get("status", run.status)
        run.conclusion = body.get("conclusion", run.conclusion)
        run.updated_at = now()
        for job in run.jobs:
            job.update(status=run.status, conclusion=run.conclusion)
    ctx = acting_ctx(hub, request, request.headers.get("X-Fakehub-Actor"))
    from app.fakehub.api_checks import emit_workflow_run

    emit_workflow_run(ctx, run, "completed" if run.status == "completed" else run.status)
    _send(hub, ctx)
    return 200, ctx.render.workflow_run(run)


# The order GitHub ranks a suite's conclusion by: the worst of its check runs.
_CONCLUSION_RANK = ["action_required", "timed_out", "failure", "cancelled", "stale", "neutral", "skipped", "success"]


@route("POST", r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)/ci")
def run_ci(hub: FakeHub, request: Request, body: dict, owner: str, name: str) -> tuple[int, Any]:
    """Another app's CI on a commit, finished at once: for GitHub Actions a workflow run whose jobs are
    check runs with the jobs' ids (as on GitHub) and logs; then check_run and check_suite `completed`."""
    repo = hub.state.repos.get(f"{owner}/{name}")
    if repo is None:
        raise AdminError(404, f"no repository {owner}/{name}")
    app_slug = body.get("app", "github-actions")
    ctx = acting_ctx(hub, request, body.get("sender"))
    state = hub.state
    with state.lock:
        conclusions = [job["conclusion"] for job in body["jobs"]]
        suite = CheckSuite(id=state.next_id(), repo=repo.full_name, head_sha=body["head_sha"],
                           head_branch=body.get("head_branch"), app_slug=app_slug,
                           conclusion=min(conclusions, key=_CONCLUSION_RANK.index))
        state.check_suites[suite.id] = suite
        workflow = WorkflowRun(id=state.next_id(), repo=repo.full_name,
                               run_number=1 + sum(1 for r in state.workflow_runs.values() if r.repo == repo.full_name),
                               event="pull_request", display_title=body.get("workflow", "CI"),
                               head_branch=body.get("head_branch") or "", head_sha=body["head_sha"],
                               path=".github/workflows/ci.yml", status="completed", conclusion=suite.conclusion)
        for job in body["jobs"]:
            job_id = state.next_id()
            workflow.jobs.append({"id": job_id, "name": job["name"], "status": "completed",
                                  "conclusion": job["conclusion"]})
            state.job_logs[job_id] = job.get("log", "")
            check = CheckRun(id=job_id, repo=repo.full_name, name=job["name"], head_sha=body["head_sha"],
                             status="completed", conclusion=job["conclusion"], started_at=now(), completed_at=now(),
                             output={"title": job.get("title"), "summary": job.get("summary")},
                             check_suite_id=suite.id, app_slug=app_slug,
                             details_url=f"{ctx.render.base}/{repo.full_name}/actions/runs/{workflow.id}/job/{job_id}")
            state.check_runs[job_id] = check
            ctx.emit("check_run", ctx.event(repo, "completed", check_run=ctx.render.check_run(check)))
        if app_slug == "github-actions":
            state.workflow_runs[workflow.id] = workflow
        ctx.emit("check_suite", ctx.event(repo, "completed", check_suite=ctx.render.check_suite(suite)))
    return 200, {"check_suite_id": suite.id, "job_ids": [job["id"] for job in workflow.jobs],
                 "deliveries": _send(hub, ctx)}
