"""REST routes for the App itself: GET /app, installations, installation access tokens and webhook deliveries."""

from __future__ import annotations

from app.fakehub.auth import issue_token, permissions_exceed
from app.fakehub.payloads import APP_PERMISSIONS
from app.fakehub.routing import Api, Ctx, HttpError, not_found, validation_failed
from app.fakehub.state import Delivery, iso, now

api = Api()


@api.route("GET", "/app")
def get_app(ctx: Ctx):
    assert ctx.state.app is not None
    return 200, ctx.render.app(ctx.state.app)


@api.route("GET", "/app/installations")
def list_installations(ctx: Ctx):
    return 200, ctx.page([ctx.render.installation(i) for i in ctx.state.installations.values()])


@api.route("GET", "/app/installations/{installation_id}")
def get_installation(ctx: Ctx):
    installation = ctx.state.installations.get(int(ctx.params["installation_id"]))
    if installation is None:
        raise not_found()
    return 200, ctx.render.installation(installation)


@api.route("POST", "/app/installations/{installation_id}/access_tokens")
def create_access_token(ctx: Ctx):
    installation = ctx.state.installations.get(int(ctx.params["installation_id"]))
    if installation is None:
        raise not_found()
    body = ctx.body or {}
    names = body.get("repositories")
    wanted: list[str] | None = None
    if names:
        wanted = [f"{installation.account.login}/{name}" for name in names]
        if any(full not in installation.repos for full in wanted):
            raise validation_failed("Installation", "repositories", "invalid",
                                    "There is at least one repository that does not exist or is not accessible")
    if body.get("repository_ids"):
        by_id = {ctx.state.repos[f].id: f for f in installation.repos}
        try:
            wanted = (wanted or []) + [by_id[i] for i in body["repository_ids"]]
        except KeyError:
            raise HttpError(422, "There is at least one repository that does not exist or is not accessible") from None
    asked = body.get("permissions") or None
    if asked and permissions_exceed(asked, APP_PERMISSIONS):
        raise HttpError(422, "The permissions requested are not granted to this installation.")
    token = issue_token(ctx.state, installation, wanted, asked)
    repos = [ctx.render.repository(ctx.state.repos[f], full=False) for f in sorted(token.repos)]
    return 201, {
        "token": token.token, "expires_at": iso(token.expires_at), "permissions": dict(token.permissions),
        "repository_selection": "selected", "repositories": repos,
    }


@api.route("DELETE", "/installation/token")
def revoke_access_token(ctx: Ctx):
    if ctx.principal.token is None:
        raise HttpError(403, "This endpoint requires you to authenticate as an installation")
    ctx.principal.token.revoked_at = now()
    return 204, None


@api.route("GET", "/repos/{owner}/{repo}/installation")
def get_repo_installation(ctx: Ctx):
    installation = ctx.state.installation_for(f"{ctx.params['owner']}/{ctx.params['repo']}")
    if installation is None:
        raise not_found()
    return 200, ctx.render.installation(installation)


def _installation_of_account(ctx: Ctx, login: str, kind: str):
    for installation in ctx.state.installations.values():
        if installation.account.login.lower() == login.lower() and (installation.account.type == "Organization") == (kind == "org"):
            return 200, ctx.render.installation(installation)
    raise not_found()


@api.route("GET", "/orgs/{org}/installation")
def get_org_installation(ctx: Ctx):
    return _installation_of_account(ctx, ctx.params["org"], "org")


@api.route("GET", "/users/{username}/installation")
def get_user_installation(ctx: Ctx):
    return _installation_of_account(ctx, ctx.params["username"], "user")


@api.route("GET", "/installation/repositories")
def list_installation_repositories(ctx: Ctx):
    if ctx.principal.token is None:
        raise HttpError(403, "This endpoint requires you to authenticate as an installation")
    repos = [ctx.render.repository(ctx.state.repos[f], full=False) for f in sorted(ctx.principal.token.repos)]
    return 200, {"total_count": len(repos), "repository_selection": "selected", "repositories": ctx.page(repos)}


# GitHub's cursors are opaque; ours name the attempt a page continues below.
_CURSOR_PREFIX = "v1_"


def hook_delivery_item(delivery: Delivery) -> dict:
    """A "webhook delivery item" as GitHub lists it; a receiver never reached shows status_code 0."""
    if delivery.status_code is None:
        status = "failed to connect to host" if delivery.url else "no webhook URL configured"
    elif delivery.ok:
        status = "OK"
    else:
        status = f"Invalid HTTP Response: {delivery.status_code}"
    return {
        "id": delivery.attempt_id, "guid": delivery.id, "delivered_at": iso(delivery.delivered_at),
        "redelivery": delivery.redelivery, "duration": delivery.duration, "status": status,
        "status_code": delivery.status_code or 0, "event": delivery.event, "action": delivery.action,
        "installation_id": (delivery.payload.get("installation") or {}).get("id"),
        "repository_id": (delivery.payload.get("repository") or {}).get("id"),
        "throttled_at": None,
    }


@api.route("GET", "/app/hook/deliveries")
def list_hook_deliveries(ctx: Ctx):
    """Newest first, `per_page` at a time (at most 100), continued by the cursor in the Link header."""
    per_page = min(int(ctx.query.get("per_page", 30)), 100)
    attempts = sorted(ctx.state.deliveries, key=lambda d: d.attempt_id, reverse=True)
    if cursor := ctx.query.get("cursor"):
        if not cursor.startswith(_CURSOR_PREFIX) or not cursor[len(_CURSOR_PREFIX):].isdigit():
            raise HttpError(400, "Invalid cursor")
        below = int(cursor[len(_CURSOR_PREFIX):])
        attempts = [d for d in attempts if d.attempt_id < below]
    wanted = ctx.query.get("status")  # "success" | "failure"
    if wanted:
        attempts = [d for d in attempts if d.ok == (wanted == "success")]
    page = attempts[:per_page]
    if len(attempts) > per_page:
        ctx.headers["link-cursor"] = f"{_CURSOR_PREFIX}{page[-1].attempt_id}"
    return 200, [hook_delivery_item(d) for d in page]


@api.route("POST", "/app/hook/deliveries/{delivery_id}/attempts")
def redeliver_hook_delivery(ctx: Ctx):
    """Accepted: the attempt's event is sent again (same guid, redelivery=true) once the answer is ready."""
    attempt_id = int(ctx.params["delivery_id"])
    original = next((d for d in ctx.state.deliveries if d.attempt_id == attempt_id), None)
    if original is None:
        raise not_found()
    ctx.resend.append(original)
    return 202, {}
