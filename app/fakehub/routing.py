"""Route table for the fake's REST API: templates as the OpenAPI description spells them, and the per-call context."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from app.fakehub.auth import Principal
from app.fakehub.payloads import Renderer
from app.fakehub.state import Delivery, FakeHubState, Repository, User

# Path parameters GitHub lets contain slashes (file paths, refs, branch names like draftsmith/issue-1, "base...head").
SLASHY = {"path", "ref", "basehead", "branch"}


class HttpError(Exception):
    """An error answer in GitHub's shape: {"message", "documentation_url", "errors"?}."""

    def __init__(self, status: int, message: str, errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors

    def body(self, docs: str) -> dict[str, Any]:
        data: dict[str, Any] = {"message": self.message, "documentation_url": docs, "status": str(self.status)}
        if self.errors is not None:
            data["errors"] = self.errors
        return data


def not_found() -> HttpError:
    return HttpError(404, "Not Found")


def validation_failed(resource: str, field_name: str, code: str = "invalid", message: str | None = None) -> HttpError:
    error: dict[str, Any] = {"resource": resource, "field": field_name, "code": code}
    if message:
        error["message"] = message
    return HttpError(422, "Validation Failed", [error])


@dataclass
class Ctx:
    """Everything one API call's handler needs; `emit` queues a webhook sent before the answer."""

    state: FakeHubState
    render: Renderer
    principal: Principal
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    resend: list[Delivery] = field(default_factory=list)  # deliveries to redeliver, once the lock is released
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def actor(self) -> User:
        assert self.principal.user is not None
        return self.principal.user

    @property
    def via_app(self) -> bool:
        return self.principal.kind == "installation"

    @property
    def repo(self) -> Repository:
        full_name = f"{self.params['owner']}/{self.params['repo']}"
        repo = self.state.repos.get(full_name)
        # GitHub answers 404, not 403, for a repository the credential cannot see.
        if repo is None or not self.principal.may_access(full_name):
            raise not_found()
        if self.principal.kind == "user" and repo.private and self.state.role(repo, self.actor.login) is None:
            raise not_found()
        return repo

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        self.pending.append((event, payload))

    def event(self, repo: Repository, action: str | None, **objects: Any) -> dict[str, Any]:
        """A webhook payload for `repo` in GitHub's layout, sender = the caller."""
        installation = self.state.installation_for(repo.full_name)
        payload: dict[str, Any] = {}
        if action is not None:
            payload["action"] = action
        payload.update(objects)
        payload["repository"] = self.render.repository(repo, full=False)
        payload["sender"] = self.render.user(self.actor)
        if installation is not None:
            payload["installation"] = {"id": installation.id, "node_id": f"MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u{installation.id}"}
        return payload

    def page(self, items: list[Any]) -> list[Any]:
        per_page = int(self.query.get("per_page", 30))
        page = int(self.query.get("page", 1))
        start = (page - 1) * per_page
        self.headers["x-total"] = str(len(items))
        if start + per_page < len(items):
            self.headers["link-next"] = str(page + 1)
        return items[start:start + per_page]


Handler = Callable[[Ctx], tuple[int, Any]]


@dataclass
class Route:
    method: str
    template: str
    handler: Handler
    pattern: re.Pattern[str]


class Api:
    """Handlers registered by (method, OpenAPI template); matched in registration order."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(self, method: str, template: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method.upper(), template, handler, _compile(template)))
            return handler

        return register

    def include(self, other: Api) -> None:
        self.routes.extend(other.routes)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The most specific route (most literal segments) for `path`, as /issues/comments beats /issues/{n}."""
        best: tuple[int, Route, dict[str, str]] | None = None
        for route in self.routes:
            if route.method != method.upper():
                continue
            found = route.pattern.fullmatch(path)
            if found:
                literal = sum(1 for part in route.template.split("/") if part and not part.startswith("{"))
                if best is None or literal > best[0]:
                    best = (literal, route, found.groupdict())
        return (best[1], best[2]) if best else None


def _compile(template: str) -> re.Pattern[str]:
    regex = ""
    for literal, name in re.findall(r"([^{]*)(?:\{(\w+)\})?", template):
        regex += re.escape(literal)
        if name:
            if name in SLASHY:
                regex += f"(?P<{name}>.+)"
            elif name.endswith(("_id", "_number")) and name != "client_id":  # integers in the description
                regex += f"(?P<{name}>[0-9]+)"
            else:
                regex += f"(?P<{name}>[^/]+)"
    return re.compile(regex)
