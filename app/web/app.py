"""create_app(settings) -> Starlette: the web process (webhook ingress, health, status page, mounted route modules)."""

from __future__ import annotations

import contextlib
import html
import importlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence

from starlette.applications import Starlette
from starlette.datastructures import URLPath
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound, Route

from app.settings import Settings
from app.web import layout

# Route modules others own, mounted when they exist, with the path prefixes they serve. Each exposes
# `routes: list[BaseRoute]` and reaches the process's Runtime as `request.app.state.runtime`. A module
# is imported on the first request under one of its prefixes, not at start-up: they pull in the ORM,
# pydantic models and OIDC verification, which a web process that only records deliveries never
# needs (issue 2 caps two web processes at 150 MB). Add new ones here.
EXTRA_ROUTE_MODULES: dict[str, tuple[str, ...]] = {
    "app.engines.actions.callbacks": ("/api/runs/",),  # Actions runners report back
    "app.engines.actions.package_route": ("/api/runner/",),  # the wheel Actions runners install
    "app.web.tasks": ("/api/tasks/", "/tasks/"),  # task page and logs API
    "app.web.setup": ("/setup",),  # manifest set-up flow (/setup)
    "app.web.dashboard.routes": ("/dashboard",),  # the dashboard behind GitHub sign-in
}

# app.web.webhooks.PATH (imported lazily in create_app).
WEBHOOK_PATH = "/api/github/webhooks"

_HOW_TO_GET = {
    "GITHUB_APP_ID": "the App ID on your GitHub App's settings page (Settings → Developer settings → GitHub Apps)",
    "GITHUB_PRIVATE_KEY or GITHUB_PRIVATE_KEY_PATH":
        "generate a private key on the same page; set GITHUB_PRIVATE_KEY_PATH to the downloaded .pem file",
    "GITHUB_WEBHOOK_SECRET": "the webhook secret you entered when creating the App (any long random string)",
}


class LazyRoutes(BaseRoute):
    """A route module's routes, imported on the first request whose path starts with one of `prefixes`."""

    def __init__(self, module: str, prefixes: Sequence[str]) -> None:
        self.module = module
        self.prefixes = tuple(prefixes)
        self._routes: list[BaseRoute] | None = None

    @property
    def routes(self) -> list[BaseRoute]:
        if self._routes is None:
            self._routes = list(importlib.import_module(self.module).routes)
        return self._routes

    def _best(self, scope) -> tuple[Match, dict, BaseRoute | None]:
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        if scope.get("type") not in ("http", "websocket") or not path.startswith(self.prefixes):
            return Match.NONE, {}, None
        partial: tuple[Match, dict, BaseRoute | None] = (Match.NONE, {}, None)
        for route in self.routes:
            match, child_scope = route.matches(scope)
            if match == Match.FULL:
                return match, child_scope, route
            if match == Match.PARTIAL and partial[2] is None:
                partial = (match, child_scope, route)
        return partial

    def matches(self, scope) -> tuple[Match, dict]:
        match, child_scope, _ = self._best(scope)
        return match, child_scope

    async def handle(self, scope, receive, send) -> None:
        # The router already merged the child scope of the route that matched; find it again.
        _, child_scope, route = self._best(scope)
        if route is None:
            raise HTTPException(status_code=404)
        scope.update(child_scope)
        await route.handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params) -> URLPath:
        for route in self.routes:
            try:
                return route.url_path_for(name, **path_params)
            except NoMatchFound:
                pass
        raise NoMatchFound(name, path_params)


def _extra_routes(modules: Mapping[str, Sequence[str]] | Sequence[str]) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for name in modules:
        # Skip only modules not written yet; a module that exists but fails to import is a bug to surface.
        if importlib.util.find_spec(name) is None:
            continue
        prefixes = modules[name] if isinstance(modules, Mapping) else ()
        if prefixes:
            routes.append(LazyRoutes(name, prefixes))
        else:
            routes.extend(importlib.import_module(name).routes)
    return routes


REGISTER_APP_DOCS = ("https://docs.github.com/en/apps/creating-github-apps/registering-a-github-app/"
                     "registering-a-github-app")


def status_page(settings: Settings, *, restarting: bool = False) -> str:
    """The body of `/`: connected to GitHub, or how to get there (/setup, or the missing settings by hand).

    `restarting`: /setup has just written the App's settings, and this process is about to be replaced.
    """
    missing = settings.missing_github_settings()
    if missing and restarting:
        return (
            "<h1>Draftsmith is starting with its new GitHub App</h1>"
            "<p>The App's settings are saved; Draftsmith's processes are restarting onto them. "
            "Reload this page in a few seconds.</p>"
        )
    if missing:
        items = "".join(
            f"<li><code>{html.escape(name)}</code>: {html.escape(_HOW_TO_GET.get(name, ''))}</li>" for name in missing
        )
        return (
            "<h1>Draftsmith is running, but not connected to GitHub yet</h1>"
            "<p>Register its GitHub App in a few clicks: Draftsmith asks GitHub to create it from "
            "<code>app.yml</code> and keeps its credentials, with no restart.</p>"
            '<p><a class="button" href="/setup">Set up the GitHub App</a></p>'
            f"<p>Or register it by hand and set what is missing:</p><ul>{items}</ul>"
            "<p>Put them in the environment or in a <code>.env</code> file and restart. The App's name, "
            "permissions and events are in <code>app.yml</code>; GitHub explains "
            f'<a href="{REGISTER_APP_DOCS}">how to register an App</a>.</p>'
        )
    return (
        "<h1>Draftsmith is running</h1>"
        f"<p>The GitHub App is ready: connected to App {settings.github_app_id} at "
        f"<code>{html.escape(settings.github_api_url)}</code>. "
        "Webhooks go to <code>/api/github/webhooks</code>; assign the App's bot on an issue to start a task.</p>"
    )


def missing_settings_message(settings: Settings) -> str | None:
    """The console version of the status page, for `serve` to print at start-up (None when configured)."""
    missing = settings.missing_github_settings()
    if not missing:
        return None
    lines = ["GitHub App settings missing; webhooks are refused until they are set:"]
    lines += [f"  {name}: {_HOW_TO_GET.get(name, '')}" for name in missing]
    return "\n".join(lines)


async def _index(request: Request) -> Response:
    from app.settings import app_settings_path

    settings = request.app.state.runtime.settings
    restarting = bool(settings.missing_github_settings()) and app_settings_path(settings).is_file()
    return layout.page("Status", status_page(settings, restarting=restarting))


def _web_runtime(settings: Settings):
    """A web process's Runtime. Its broker is built when something first needs it (/readyz, /metrics, an
    Actions callback, a Redis the direct enqueuer cannot reach): redis-py and dramatiq's RedisBroker
    cost a web process ~22 MB, and recording and enqueueing webhooks needs neither (app.deliveries.enqueuers).
    """
    from app.runtime import Runtime

    url = settings.redis_url
    if not url:
        raise ValueError("no Redis URL: start the embedded Redis first and pass its URL")

    def connect_broker():
        from app.queue.actors import declare_actors
        from app.queue.broker import make_broker

        broker = make_broker(url, heartbeat_timeout_ms=settings.heartbeat_timeout_seconds * 1000)
        declare_actors(broker, runtime)
        return broker

    runtime = Runtime(settings, broker=connect_broker, redis_url=url)
    return runtime


def create_app(
    settings: Settings,
    *,
    runtime=None,
    extra_route_modules: Mapping[str, Sequence[str]] | Sequence[str] = EXTRA_ROUTE_MODULES,
) -> Starlette:
    """The Starlette app. Nothing opens at construction; the lifespan builds (or adopts) the Runtime.

    Without `runtime`, settings.redis_url must be set (serve passes the embedded Redis's URL).
    """
    from app.web import health, webhooks

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        from app.deliveries.enqueuers import enqueuer_for
        from app.deliveries.recorder import recorder_for
        from app.deliveries.stores import store_for

        own = runtime is None
        rt = runtime or _web_runtime(settings)
        store = store_for(rt.settings.effective_database_url, lambda: rt.engine)
        enqueuer = enqueuer_for(rt)
        recorder = recorder_for(store, enqueuer).start()
        app.state.runtime = rt
        app.state.recorder = recorder
        app.state.webhook_secrets = tuple(s.encode() for s in rt.settings.webhook_secrets) or None
        try:
            yield
        finally:
            recorder.close()
            enqueuer.close()
            if own:
                rt.close()

    routes: list[BaseRoute] = [
        Route("/", _index, methods=["GET"]),
        *layout.routes,
        *health.routes,
        *_extra_routes(extra_route_modules),
    ]
    app = DraftsmithApp(routes=routes, lifespan=lifespan)
    app.webhook = webhooks.WebhookEndpoint(app.state)
    # Only reached for other methods (405) or a mounted root_path: POST on the path short-cuts in __call__.
    app.router.routes.insert(1, Route(webhooks.PATH, app.webhook, methods=["POST"]))
    return app


class DraftsmithApp(Starlette):
    """Starlette, with POST /api/github/webhooks answered before its middleware stack and router.

    That path is nearly all of a web process's traffic, and Starlette's error and exception
    middleware, router and per-route wrappers cost more CPU per request than the webhook's own
    work (py-spy under load); the endpoint is a bare ASGI callable that needs none of them.
    """

    webhook: Callable

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == WEBHOOK_PATH:
            scope["app"] = self
            await self.webhook(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
