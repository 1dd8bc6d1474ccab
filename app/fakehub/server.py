"""The fake GitHub as a Starlette app: REST (contract-checked), GraphQL, git smart HTTP and the /_fakehub admin API."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import time
import uuid
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from app.fakehub import admin, api_app, api_checks, api_issues, api_pulls, api_repos, manifests, oauth, relay
from app.fakehub.auth import AuthError, Principal, authenticate, token_permits
from app.fakehub.gitserver import GIT_PATH, GitEndpoint
from app.fakehub.hub import FakeHub
from app.fakehub.payloads import Renderer
from app.fakehub.routing import Api, Ctx, HttpError
from app.fakehub.spec import DOCS, ContractChecker
from app.fakehub.state import Fault, RequestRecord
from app.fakehub.webhooks import deliver, redeliver

API = Api()
for module in (api_app, api_repos, api_issues, api_pulls, api_checks, manifests, oauth):
    API.include(module.api)

# Not in the OpenAPI description (GraphQL is checked by hand in api_pulls.graphql).
UNDESCRIBED = {"/graphql"}


class FakeGitHub:
    """Dispatches one API call: faults, route, auth, contract check, handler, webhooks, audit record."""

    def __init__(self, hub: FakeHub, checker: ContractChecker) -> None:
        self.hub = hub
        self.checker = checker

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        fault = self._take_fault(request.method, request.url.path, app_call="x-fakehub-actor" not in request.headers)
        if fault is not None and fault.hang:
            await asyncio.sleep(fault.hang)
        if fault is not None and fault.status:
            response = _fault_response(fault)
            self._record(request, None, response.status_code, body)
            return response
        return await run_in_threadpool(self.handle, request, body)

    def _take_fault(self, method: str, path: str, app_call: bool = True) -> Fault | None:
        faults = self.hub.state.faults
        with self.hub.state.lock:
            clock = time.monotonic()
            for fault in list(faults):
                if fault.until is not None and clock >= fault.until:
                    faults.remove(fault)
                    continue
                if fault.app_only and not app_call:
                    continue
                if fault.method.upper() not in (method.upper(), "*") or not fnmatch.fnmatchcase(path, fault.path):
                    continue
                fault.seen += 1
                if fault.seen % max(1, fault.every):
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        faults.remove(fault)
                return fault
        return None

    def handle(self, request: Request, raw: bytes) -> Response:
        state = self.hub.state
        path, method = request.url.path, request.method
        query = dict(request.query_params)
        principal: Principal | None = None
        status, data, headers = 500, None, {}
        answered: float | None = None
        docs = DOCS
        try:
            found = API.match(method, path)
            if found is None:
                known = path not in UNDESCRIBED and self.checker.knows(path, method)
                if known == "ok":
                    raise HttpError(501, f"fakehub does not implement {method} {path} yet (GitHub does)")
                raise HttpError(404, "Not Found")
            route, params = found
            docs = self.checker.documentation_url(route.template, method)
            try:
                principal = authenticate(state, route.template, request.headers)
            except AuthError as error:
                raise HttpError(error.status, error.message) from None
            if principal.token is not None and not token_permits(principal.token, route.template, method):
                raise HttpError(403, "Resource not accessible by integration")
            try:
                parsed = json.loads(raw) if raw.strip() else None
            except ValueError:
                raise HttpError(400, "Problems parsing JSON") from None
            # Calls with neither body nor query string have nothing openapi-core can refuse once the route
            # matched (it costs ~15 ms a call), so only those with input are checked.
            if route.template not in UNDESCRIBED and (raw.strip() or query):
                violation = self.checker.check_request(route.template, params, method, query, raw if raw.strip() else None)
                if violation is not None:
                    status, data = violation.status, violation.body
                    raise _Answered()
            ctx = Ctx(state=state, render=Renderer(state, str(request.base_url)), principal=principal,
                      params=params, query=query, body=parsed if parsed is not None else {})
            with state.lock:
                status, data = route.handler(ctx)
            answered = time.monotonic()
            for event, payload in ctx.pending:
                deliver(state, event, payload)
            for original in ctx.resend:
                redeliver(state, original)
            headers = _pagination_headers(request, ctx.headers)
            if "location" in ctx.headers:
                headers["Location"] = ctx.headers["location"]
            if self.hub.validate_responses and route.template not in UNDESCRIBED and status < 300:
                problems = self.checker.check_response(route.template, params, method, status, data)
                if problems:
                    status, data = 500, {"message": "fakehub answered outside GitHub's description",
                                         "documentation_url": docs, "errors": problems}
        except HttpError as error:
            status, data = error.status, error.body(docs)
        except _Answered:
            pass
        self._record(request, principal, status, raw, answered)
        headers.update({"X-GitHub-Request-Id": uuid.uuid4().hex[:20].upper(), "X-RateLimit-Limit": "5000",
                        "X-RateLimit-Remaining": "4999", "X-GitHub-Media-Type": "github.v3; format=json"})
        if data is None or status == 204:
            return Response(status_code=status, headers=headers)
        return JSONResponse(data, status, headers, media_type="application/json; charset=utf-8")

    def _record(self, request: Request, principal: Principal | None, status: int, raw: bytes,
                answered: float | None = None) -> None:
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = raw.decode(errors="replace")
        actor = None
        if principal is not None:
            actor = principal.user.login if principal.user else f"app:{self.hub.app.slug}"
        token = principal.token.token if principal is not None and principal.token is not None else None
        with self.hub.state.lock:
            self.hub.state.requests.append(RequestRecord(
                method=request.method, path=request.url.path, query=request.url.query, actor=actor,
                status=status, body=body, token=token, at=answered or time.monotonic(),
            ))


class _Answered(Exception):
    """The contract check already produced the answer."""


def _pagination_headers(request: Request, hints: dict[str, str]) -> dict[str, str]:
    if "link-cursor" in hints:  # cursor-paginated lists (webhook deliveries) name the next page's cursor
        url = request.url.include_query_params(cursor=hints["link-cursor"])
    elif "link-next" in hints:
        url = request.url.include_query_params(page=hints["link-next"])
    else:
        return {}
    return {"Link": f'<{url}>; rel="next"'}


def _fault_response(fault: Fault) -> Response:
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    if fault.status == 403 or fault.status == 429:
        message = fault.message or "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
        headers.update({"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4999"})
    elif fault.status >= 500:
        message = fault.message or "Server Error"
    else:
        message = fault.message or "Injected fault"
    return JSONResponse({"message": message, "documentation_url": DOCS, "status": str(fault.status)},
                        fault.status, headers)


def create_fakehub(
    hub: FakeHub | None = None, *, spec_path: Path | None = None, validate_responses: bool | None = None,
    **hub_options: Any,
) -> Starlette:
    """The fake GitHub ASGI app. `app.state.hub` is the FakeHub (its `.state` is readable by tests).

    `validate_responses` also checks the fake's own answers against the description (~30 ms a call), answering
    500 on a mismatch; the fake's own tests turn it on (`hub.validate_responses`).
    """
    hub = hub or FakeHub(**hub_options)
    if validate_responses is not None:
        hub.validate_responses = validate_responses
    fake = FakeGitHub(hub, ContractChecker(spec_path))
    git_endpoint = GitEndpoint(hub)

    async def everything(request: Request) -> Response:
        if request.url.path.startswith("/_fakehub/job-logs/"):
            # Where GET .../actions/jobs/{id}/logs redirects: plain text, no token (GitHub signs the URL).
            job_id = request.url.path.rsplit("/", 1)[-1]
            log = hub.state.job_logs.get(int(job_id)) if job_id.isdigit() else None
            return PlainTextResponse(log) if log is not None else PlainTextResponse("Not Found", 404)
        if request.url.path.startswith("/_fakehub/"):
            return await admin.dispatch(hub, request)
        if request.url.path.startswith(oauth.PATH_PREFIX):
            return await oauth.dispatch(hub, request)
        if GIT_PATH.match(request.url.path):
            return await git_endpoint(request)
        if request.url.path.startswith(relay.PREFIX):
            return await relay.dispatch(hub, request)
        if manifests.handles(request.url.path):  # GitHub's web pages of the manifest flow
            return await manifests.page(hub, request)
        return await fake.endpoint(request)

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS"]
    app = Starlette(routes=[Route("/{path:path}", everything, methods=methods)])
    app.state.hub = hub
    return app
