"""Operations endpoints: /healthz (process up), /readyz (database and Redis reachable), /metrics (Prometheus)."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def _check_database(runtime) -> None:
    from sqlalchemy import text  # here, not at import: a web process that only records deliveries never loads it

    with runtime.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _check_redis(runtime) -> None:
    client = getattr(runtime.broker, "client", None)
    if client is not None:
        client.ping()


async def readyz(request: Request) -> Response:
    runtime = request.app.state.runtime
    checks = {}
    for name, check in (("database", _check_database), ("redis", _check_redis)):
        try:
            await asyncio.wait_for(asyncio.to_thread(check, runtime), timeout=5)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unreachable ({type(exc).__name__})"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    # Rendering queries Redis and the database for the scrape-time gauges, so keep it off the loop.
    body = await asyncio.to_thread(request.app.state.runtime.metrics.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
