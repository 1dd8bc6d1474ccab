"""GET /api/runner/{digest}/{filename}: the wheel Actions runners install (public: it is this server's own code)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from app.engines.actions.runner_package import RunnerPackageUnavailable, cached_wheel, runner_wheel, wheel_cache_dir


async def get_runner_wheel(request: Request) -> Response:
    directory = wheel_cache_dir(request.app.state.runtime.settings)
    digest, filename = request.path_params["digest"], request.path_params["filename"]
    try:
        current = await run_in_threadpool(runner_wheel, directory)
    except RunnerPackageUnavailable as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
    path = current.path if (digest, filename) == (current.digest, current.filename) else cached_wheel(
        directory, digest, filename)
    if path is None:
        return JSONResponse({"error": "no such runner package here; retry the task to get the current one"},
                            status_code=404)
    # The bytes are served as stored: the runner checks them against the hash its dispatch carried.
    return FileResponse(path, media_type="application/octet-stream",
                        headers={"Cache-Control": "public, max-age=31536000, immutable"})


routes = [Route("/api/runner/{digest}/{filename}", get_runner_wheel, methods=["GET"], name="runner_wheel")]
