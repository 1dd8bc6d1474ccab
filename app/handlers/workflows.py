"""workflow_run and workflow_job events for our dispatched runs: link them, and notice runs lost in Actions."""

from __future__ import annotations

from sqlmodel import Session, select

from app.events.router import Router
from app.models import Run
from app.engines.actions.dispatch import parse_run_name

router = Router()


@router.register("workflow_run")
async def follow_workflow_run(ctx) -> None:
    workflow_run = ctx.event.payload.get("workflow_run") or {}
    # Our workflow's run-name carries the Draftsmith run id (workflows/draftsmith.yml).
    ours = parse_run_name(workflow_run.get("display_title"))
    if ours is None or ctx.gh is None:
        return  # someone else's workflow
    from app.engines.actions import engine as actions_engine

    await actions_engine.link_workflow_run(ctx.runtime, ctx.gh, ours[0], workflow_run)


@router.register("workflow_job")
async def link_workflow_job(ctx) -> None:
    """A job's page is the most useful details link while it runs; the run's own events end the task."""
    job = ctx.event.payload.get("workflow_job") or {}
    if job.get("run_id") is None or ctx.gh is None or not job.get("html_url"):
        return
    with Session(ctx.engine) as session:
        run = session.exec(select(Run).where(Run.actions_run_id == job["run_id"])).first()
    if run is None:
        return
    from app.engines.actions import engine as actions_engine

    await actions_engine.link_workflow_run(
        ctx.runtime, ctx.gh, run.id, {"id": job["run_id"], "html_url": job["html_url"], "status": "in_progress"})
