"""REST routes for check runs, repository_dispatch and GitHub Actions workflow runs and jobs."""

from __future__ import annotations

from datetime import datetime

from app.fakehub import git, workflows
from app.fakehub.routing import Api, Ctx, HttpError, not_found
from app.fakehub.state import CheckRun, Dispatch, WorkflowRun, now

api = Api()


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _apply(run: CheckRun, body: dict) -> None:
    for key in ("name", "details_url", "external_id", "status", "conclusion"):
        if key in body:
            setattr(run, key, body[key])
    if "output" in body:
        run.output = {**run.output, **body["output"]}
    if "actions" in body:
        run.actions = body["actions"]
    if body.get("started_at"):
        run.started_at = _time(body["started_at"])
    if body.get("conclusion"):
        # Setting a conclusion completes the run, as on GitHub.
        run.status = "completed"
    if run.status == "completed":
        run.completed_at = _time(body.get("completed_at")) or run.completed_at or now()
    if run.status == "in_progress" and run.started_at is None:
        run.started_at = now()


@api.route("POST", "/repos/{owner}/{repo}/check-runs")
def create_check_run(ctx: Ctx):
    repo = ctx.repo
    if not ctx.via_app:
        raise HttpError(403, "You must authenticate via a GitHub App.")
    store = git.open_repo(repo.git_dir)
    if git.resolve_ref(store, ctx.body["head_sha"]) is None:
        raise HttpError(422, "No commit found for SHA: " + ctx.body["head_sha"])
    if ctx.body.get("status") == "completed" and not ctx.body.get("conclusion"):
        raise HttpError(422, "Invalid request.\n\nconclusion is required when status is completed.")
    run = CheckRun(id=ctx.state.next_id(), repo=repo.full_name, name=ctx.body["name"], head_sha=ctx.body["head_sha"],
                   started_at=now(), check_suite_id=ctx.state.next_id())
    _apply(run, ctx.body)
    ctx.state.check_runs[run.id] = run
    ctx.emit("check_run", ctx.event(repo, "created", check_run=ctx.render.check_run(run)))
    return 201, ctx.render.check_run(run)


def find_check_run(ctx: Ctx) -> CheckRun:
    repo = ctx.repo
    run = ctx.state.check_runs.get(int(ctx.params["check_run_id"]))
    if run is None or run.repo != repo.full_name:
        raise not_found()
    return run


@api.route("PATCH", "/repos/{owner}/{repo}/check-runs/{check_run_id}")
def update_check_run(ctx: Ctx):
    if not ctx.via_app:
        raise HttpError(403, "You must authenticate via a GitHub App.")
    run = find_check_run(ctx)
    was_completed = run.status == "completed"
    _apply(run, ctx.body)
    if run.status == "completed" and not was_completed:
        ctx.emit("check_run", ctx.event(ctx.repo, "completed", check_run=ctx.render.check_run(run)))
    return 200, ctx.render.check_run(run)


@api.route("GET", "/repos/{owner}/{repo}/check-runs/{check_run_id}")
def get_check_run(ctx: Ctx):
    return 200, ctx.render.check_run(find_check_run(ctx))


def _commit(ctx: Ctx) -> str:
    sha = git.resolve_ref(git.open_repo(ctx.repo.git_dir), ctx.params["ref"])
    if sha is None:
        raise HttpError(422, f"No commit found for SHA: {ctx.params['ref']}")
    return sha


@api.route("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs")
def list_check_runs_for_ref(ctx: Ctx):
    repo, sha = ctx.repo, _commit(ctx)
    runs = [r for r in ctx.state.check_runs.values() if r.repo == repo.full_name and r.head_sha == sha]
    if ctx.query.get("check_name"):
        runs = [r for r in runs if r.name == ctx.query["check_name"]]
    if ctx.query.get("status"):
        runs = [r for r in runs if r.status == ctx.query["status"]]
    runs.sort(key=lambda r: -r.id)
    return 200, {"total_count": len(runs), "check_runs": [ctx.render.check_run(r) for r in ctx.page(runs)]}


@api.route("GET", "/repos/{owner}/{repo}/commits/{ref}/check-suites")
def list_check_suites_for_ref(ctx: Ctx):
    repo, sha = ctx.repo, _commit(ctx)
    suites = sorted((s for s in ctx.state.check_suites.values() if s.repo == repo.full_name and s.head_sha == sha),
                    key=lambda s: s.id)
    rendered = [ctx.render.check_suite(s) for s in suites]
    if ctx.query.get("app_id"):
        rendered = [s for s in rendered if str(s["app"]["id"]) == ctx.query["app_id"]]
    return 200, {"total_count": len(rendered), "check_suites": ctx.page(rendered)}


@api.route("GET", "/repos/{owner}/{repo}/check-suites/{check_suite_id}")
def get_check_suite(ctx: Ctx):
    suite = ctx.state.check_suites.get(int(ctx.params["check_suite_id"]))
    if suite is None or suite.repo != ctx.repo.full_name:
        raise not_found()
    return 200, ctx.render.check_suite(suite)


def _find_job(ctx: Ctx) -> tuple[WorkflowRun, dict]:
    job_id = int(ctx.params["job_id"])
    for run in ctx.state.workflow_runs.values():
        if run.repo == ctx.repo.full_name:
            for job in run.jobs:
                if job["id"] == job_id:
                    return run, job
    raise not_found()


@api.route("GET", "/repos/{owner}/{repo}/actions/jobs/{job_id}")
def get_job(ctx: Ctx):
    return 200, ctx.render.job(*_find_job(ctx))


@api.route("GET", "/repos/{owner}/{repo}/actions/jobs/{job_id}/logs")
def download_job_logs(ctx: Ctx):
    """As GitHub: a 302 to a short-lived URL of the plain-text log, which needs no token."""
    _, job = _find_job(ctx)
    ctx.state.job_logs.setdefault(job["id"], "")
    ctx.headers["location"] = f"{ctx.render.base}/_fakehub/job-logs/{job['id']}"
    return 302, None


# -- repository_dispatch and workflow runs -----------------------------------------------------------------
@api.route("POST", "/repos/{owner}/{repo}/dispatches")
def create_dispatch(ctx: Ctx):
    repo = ctx.repo
    dispatch = Dispatch(repo=repo.full_name, event_type=ctx.body["event_type"],
                        client_payload=ctx.body.get("client_payload") or {}, actor=ctx.actor.login)
    repo.dispatches.append(dispatch)
    # A repository_dispatch starts the default branch's workflows that listen for its type, each titled by
    # its run-name; with no such workflow nothing runs, and GitHub still answers 204.
    sha = git.resolve_ref(git.open_repo(repo.git_dir), repo.default_branch) or ""
    event = {"action": dispatch.event_type, "client_payload": dispatch.client_payload}
    for path, title in workflows.dispatched_workflows(repo.git_dir, sha, dispatch.event_type, event):
        run_id = ctx.state.next_id()
        number = 1 + sum(1 for r in ctx.state.workflow_runs.values() if r.repo == repo.full_name)
        run = WorkflowRun(
            id=run_id, repo=repo.full_name, run_number=number, event="repository_dispatch",
            display_title=title, head_branch=repo.default_branch, head_sha=sha, path=path,
            client_payload=dispatch.client_payload, jobs=[{"id": ctx.state.next_id(), "name": "run"}],
        )
        ctx.state.workflow_runs[run_id] = run
        emit_workflow_run(ctx, run, "requested")
    return 204, None


def emit_workflow_run(ctx: Ctx, run: WorkflowRun, action: str) -> None:
    """The workflow_run webhook GitHub sends as a run is requested, starts and completes."""
    repo = ctx.state.repos[run.repo]
    workflow = {"id": run.workflow_id, "name": "Draftsmith", "path": run.path, "state": "active"}
    ctx.emit("workflow_run", ctx.event(repo, action, workflow_run=ctx.render.workflow_run(run), workflow=workflow))


def find_workflow_run(ctx: Ctx) -> WorkflowRun:
    repo = ctx.repo
    run = ctx.state.workflow_runs.get(int(ctx.params["run_id"]))
    if run is None or run.repo != repo.full_name:
        raise not_found()
    return run


@api.route("GET", "/repos/{owner}/{repo}/actions/runs")
def list_workflow_runs(ctx: Ctx):
    repo = ctx.repo
    runs = [r for r in ctx.state.workflow_runs.values() if r.repo == repo.full_name]
    for key in ("event", "status", "head_sha"):
        if ctx.query.get(key):
            runs = [r for r in runs if getattr(r, key) == ctx.query[key] or (key == "status" and r.conclusion == ctx.query[key])]
    if ctx.query.get("branch"):
        runs = [r for r in runs if r.head_branch == ctx.query["branch"]]
    runs.sort(key=lambda r: -r.id)
    return 200, {"total_count": len(runs), "workflow_runs": [ctx.render.workflow_run(r) for r in ctx.page(runs)]}


@api.route("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}")
def get_workflow_run(ctx: Ctx):
    return 200, ctx.render.workflow_run(find_workflow_run(ctx))


@api.route("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs")
def list_jobs(ctx: Ctx):
    run = find_workflow_run(ctx)
    return 200, {"total_count": len(run.jobs), "jobs": [ctx.render.job(run, job) for job in ctx.page(run.jobs)]}


@api.route("POST", "/repos/{owner}/{repo}/actions/runs/{run_id}/cancel")
def cancel_workflow_run(ctx: Ctx):
    run = find_workflow_run(ctx)
    if run.status == "completed":
        raise HttpError(409, "Cannot cancel a workflow run that is completed.")
    run.status, run.conclusion, run.updated_at = "completed", "cancelled", now()
    for job in run.jobs:
        job.update(status="completed", conclusion="cancelled")
    emit_workflow_run(ctx, run, "completed")
    return 202, {}
