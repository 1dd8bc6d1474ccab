"""create_app(settings) -> Starlette: the web process (webhook ingress, health, status page, mounted route modules)."""

from __future__ import annotations

import contextlib
import html
import importlib
import importlib.util
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from app.settings import Settings

# Route modules others own, mounted when they exist. Each exposes `routes: list[BaseRoute]` and
# reaches the process's Runtime as `request.app.state.runtime`. Add new ones here.
EXTRA_ROUTE_MODULES: tuple[str, ...] = (
    "app.web.callbacks",  # Actions runners report back
    "app.web.tasks",      # task page and logs API
    "app.web.setup",      # manifest set-up flow (/setup)
)

SETUP_PATH = "/setup"

_HOW_TO_GET = {
    "GITHUB_APP_ID": "the App ID on your GitHub App's settings page (Settings → Developer settings → GitHub Apps)",
    "GITHUB_PRIVATE_KEY or GITHUB_PRIVATE_KEY_PATH":
        "generate a private key on the same page; set GITHUB_PRIVATE_KEY_PATH to the downloaded .pem file",
    "GITHUB_WEBHOOK_SECRET": "the webhook secret you entered when creating the App (any long random string)",
}


def _extra_routes(modules: Sequence[str]) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for name in modules:
        # Skip only modules not written yet; a module that exists but fails to import is a bug to surface.
        if importlib.util.find_spec(name) is None:
            continue
        routes.extend(importlib.import_module(name).routes)
    return routes


def status_page(settings: Settings) -> str:
    missing = settings.missing_github_settings()
    if missing:
        items = "".join(
            f"<li><code>{html.escape(name)}</code>: {html.escape(_HOW_TO_GET.get(name, ''))}</li>" for name in missing
        )
        body = (
            "<h1>Draftsmith is running, but not connected to GitHub yet</h1>"
            f"<p>These settings are missing:</p><ul>{items}</ul>"
            "<p>Put them in the environment or in a <code>.env</code> file and restart. "
            f'Guided set-up will live at <a href="{SETUP_PATH}">{SETUP_PATH}</a>.</p>'
        )
    else:
        body = (
            "<h1>Draftsmith is running</h1>"
            f"<p>GitHub App {settings.github_app_id} at <code>{html.escape(settings.github_api_url)}</code>. "
            "Webhooks go to <code>/api/github/webhooks</code>.</p>"
        )
    return f"<!doctype html><html><head><meta charset=utf-8><title>Draftsmith</title></head><body>{body}</body></html>"


def missing_settings_message(settings: Settings) -> str | None:
    """The console version of the status page, for `serve` to print at start-up (None when configured)."""
    missing = settings.missing_github_settings()
    if not missing:
        return None
    lines = ["GitHub App settings missing; webhooks are refused until they are set:"]
    lines += [f"  {name}: {_HOW_TO_GET.get(name, '')}" for name in missing]
    return "\n".join(lines)


async def _index(request: Request) -> Response:
    return HTMLResponse(status_page(request.app.state.runtime.settings))


def create_app(
    settings: Settings,
    *,
    runtime=None,
    extra_route_modules: Sequence[str] = EXTRA_ROUTE_MODULES,
) -> Starlette:
    """The Starlette app. Nothing opens at construction; the lifespan builds (or adopts) the Runtime.

    Without `runtime`, settings.redis_url must be set (serve passes the embedded Redis's URL).
    """
    from app.web import health, webhooks

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        from app.deliveries import DeliveryRecorder
        from app.queue.actors import declare_actors
        from app.queue.broker import enqueue_many
        from app.runtime import Runtime

        own = runtime is None
        rt = runtime or Runtime.from_settings(settings)
        actor = declare_actors(rt.broker).process_delivery
        recorder = DeliveryRecorder(
            rt.engine, lambda ids: enqueue_many(rt.broker, [actor.message(i) for i in ids])
        ).start()
        secret = rt.settings.github_webhook_secret
        app.state.runtime = rt
        app.state.recorder = recorder
        app.state.webhook_secret = secret.get_secret_value() if secret is not None else None
        try:
            yield
        finally:
            recorder.close()
            if own:
                rt.close()

    routes: list[BaseRoute] = [
        Route("/", _index, methods=["GET"]),
        *webhooks.routes,
        *health.routes,
        *_extra_routes(extra_route_modules),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
