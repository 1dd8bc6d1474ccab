"""Usage from the dashboard: tasks per day, success rate, median duration and cost, per repository and agent."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from app.web.dashboard import common, present, queries
from app.web.dashboard.tasks import _signed_in


async def usage_page(request: Request) -> Response:
    """`GET /dashboard/usage`: the last 30 days of the repositories the person reaches."""
    signed = await _signed_in(request)
    if isinstance(signed, Response):
        return signed
    session, reach = signed
    usage = await run_in_threadpool(queries.usage, request.app.state.runtime.engine, reach.scopes())
    return common.page(request, session, "Usage", "usage.html", usage=usage, chart=present.usage_chart(usage.days),
                       days=queries.USAGE_DAYS)
