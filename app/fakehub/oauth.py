"""The App's user authorization: GitHub's OAuth web flow (authorize page, code for token, PKCE) and the user-token APIs.

https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-user-access-token-for-a-github-app
A user access token reaches only what both the user and the App reach: the installations with a repository
the user holds a role on, and in each only those repositories (`GET /user/installations`,
`GET /user/installations/{installation_id}/repositories`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app.fakehub.hub import FakeHub
from app.fakehub.api_repos import _permission_flags
from app.fakehub.routing import Api, Ctx, HttpError, not_found
from app.fakehub.state import Installation, OAuthGrant, Repository, User, UserToken, now

PATH_PREFIX = "/login/oauth/"
CODE_LIFETIME = timedelta(minutes=10)  # GitHub: "The code will expire after 10 minutes"
USER_TOKEN_LIFETIME = timedelta(hours=8)
REFRESH_TOKEN_LIFETIME = timedelta(days=183)
ERROR_DOCS = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"

api = Api()


def client_credentials(hub: FakeHub) -> tuple[str, str]:
    """The App's OAuth client id and a client secret, as its settings page shows them."""
    return hub.app.client_id, hub.app.client_secret


# -- the web flow -----------------------------------------------------------------------------------


async def dispatch(hub: FakeHub, request: Request) -> Response:
    path = request.url.path
    if path == "/login/oauth/authorize" and request.method == "GET":
        return _authorize_page(hub, request)
    if path == "/login/oauth/authorize" and request.method == "POST":
        return _authorized(hub, dict(parse_qsl((await request.body()).decode())))
    if path == "/login/oauth/access_token" and request.method == "POST":
        raw = await request.body()
        if request.headers.get("content-type", "").startswith("application/json"):
            params = {k: str(v) for k, v in (json.loads(raw or b"{}") or {}).items()}
        else:
            params = dict(parse_qsl(raw.decode()))
        params.update({k: v for k, v in request.query_params.items() if k not in params})
        answer = await run_in_threadpool(_exchange, hub, params)
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(answer)
        return Response(urlencode(answer), media_type="application/x-www-form-urlencoded")
    return JSONResponse({"message": "Not Found"}, 404)


def _authorize_page(hub: FakeHub, request: Request) -> Response:
    query = request.query_params
    if query.get("client_id") != hub.app.client_id:
        return HTMLResponse("<h1>404</h1><p>No application with this client id.</p>", 404)
    if query.get("code_challenge") and query.get("code_challenge_method", "plain") != "S256":
        return HTMLResponse("<h1>400</h1><p>code_challenge_method must be S256.</p>", 400)
    with hub.state.lock:
        people = sorted(u.login for u in hub.state.users.values() if u.type == "User" and u is not hub.app.owner)
    chosen = query.get("login") or (people[0] if people else "")
    options = "".join(
        f'<label><input type="radio" name="login" value="{html.escape(p)}"{" checked" if p == chosen else ""}> '
        f"{html.escape(p)}</label><br>" for p in people)
    hidden = "".join(f'<input type="hidden" name="{name}" value="{html.escape(query.get(name, ""))}">'
                     for name in ("client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method"))
    return HTMLResponse(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Authorize application</title></head>"
        f"<body><h1>Authorize {html.escape(hub.app.name)}</h1>"
        f'<form method="post" action="/login/oauth/authorize"><fieldset><legend>Sign in as</legend>{options}'
        f"</fieldset>{hidden}<button type=\"submit\" id=\"authorize\">Authorize</button></form></body></html>")


def _authorized(hub: FakeHub, form: dict) -> Response:
    if form.get("client_id") != hub.app.client_id or not form.get("login"):
        return HTMLResponse("<h1>400</h1><p>Bad authorization request.</p>", 400)
    redirect_uri = form.get("redirect_uri") or None
    if redirect_uri is None:
        return HTMLResponse("<h1>400</h1><p>fakehub has no callback URL on file: pass redirect_uri.</p>", 400)
    with hub.state.lock:
        user = hub.state.users.get(form["login"])
        if user is None:
            return HTMLResponse("<h1>400</h1><p>No such user.</p>", 400)
        grant = OAuthGrant(code=secrets.token_hex(10), user=user, redirect_uri=redirect_uri,
                      code_challenge=form.get("code_challenge") or None, expires_at=now() + CODE_LIFETIME)
        hub.state.oauth_grants[grant.code] = grant
    separator = "&" if "?" in redirect_uri else "?"
    params = {"code": grant.code}
    if form.get("state"):
        params["state"] = form["state"]
    return RedirectResponse(redirect_uri + separator + urlencode(params), status_code=302)


def _error(code: str, description: str) -> dict:
    # GitHub answers these with 200 and an error body, not an HTTP error status.
    return {"error": code, "error_description": description, "error_uri": ERROR_DOCS}


def _exchange(hub: FakeHub, params: dict[str, str]) -> dict:
    state = hub.state
    if params.get("client_id") != hub.app.client_id or not secrets.compare_digest(
            params.get("client_secret", ""), hub.app.client_secret):
        return _error("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
    with state.lock:
        if params.get("grant_type") == "refresh_token":
            old = next((t for t in state.user_tokens.values() if t.refresh_token == params.get("refresh_token")), None)
            if old is None:
                return _error("bad_refresh_token", "The refresh token passed is incorrect or expired.")
            del state.user_tokens[old.token]
            return _issue(state, old.user)
        grant = state.oauth_grants.pop(params.get("code", ""), None)  # single use, whatever happens next
        if grant is None or grant.expires_at < now():
            return _error("bad_verification_code", "The code passed is incorrect or expired.")
        if params.get("redirect_uri") and params["redirect_uri"] != grant.redirect_uri:
            return _error("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.")
        if grant.code_challenge is not None:
            verifier = params.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if not verifier or not secrets.compare_digest(digest, grant.code_challenge):
                return _error("bad_verification_code", "The code_verifier does not match the code_challenge.")
        return _issue(state, grant.user)


def _issue(state, user: User) -> dict:
    token = UserToken(token="ghu_" + secrets.token_hex(18), user=user, expires_at=now() + USER_TOKEN_LIFETIME,
                      refresh_token="ghr_" + secrets.token_hex(38))
    state.user_tokens[token.token] = token
    return {"access_token": token.token, "expires_in": int(USER_TOKEN_LIFETIME.total_seconds()),
            "refresh_token": token.refresh_token,
            "refresh_token_expires_in": int(REFRESH_TOKEN_LIFETIME.total_seconds()),
            "scope": "", "token_type": "bearer"}


# -- the user-token APIs ----------------------------------------------------------------------------


def _reachable(ctx: Ctx, installation: Installation) -> list[Repository]:
    login = ctx.actor.login
    return [ctx.state.repos[name] for name in sorted(installation.repos)
            if name in ctx.state.repos and ctx.state.role(ctx.state.repos[name], login) is not None]


def _user_token_only(ctx: Ctx) -> None:
    if ctx.principal.kind != "user":
        raise HttpError(403, "You must authenticate with an access token authorized to a GitHub App in order to "
                             "list installations")


@api.route("GET", "/user")
def get_authenticated_user(ctx: Ctx):
    if ctx.principal.kind != "user":
        raise HttpError(403, "Resource not accessible by integration")
    data = ctx.render.user(ctx.actor)
    data.update({"name": None, "company": None, "blog": "", "location": None, "email": None, "hireable": None,
                 "bio": None, "public_repos": 0, "public_gists": 0, "followers": 0, "following": 0,
                 "created_at": "2020-01-01T00:00:00Z", "updated_at": "2020-01-01T00:00:00Z"})
    return 200, data


@api.route("GET", "/user/installations")
def list_user_installations(ctx: Ctx):
    _user_token_only(ctx)
    found = [ctx.render.installation(i) for i in ctx.state.installations.values() if _reachable(ctx, i)]
    return 200, {"total_count": len(found), "installations": ctx.page(found)}


@api.route("GET", "/user/installations/{installation_id}/repositories")
def list_user_installation_repositories(ctx: Ctx):
    _user_token_only(ctx)
    installation = ctx.state.installations.get(int(ctx.params["installation_id"]))
    repos = _reachable(ctx, installation) if installation is not None else []
    if not repos:
        raise not_found()
    rendered = []
    for repo in repos:
        data = ctx.render.repository(repo, full=False)
        data["permissions"] = _permission_flags(ctx.state.role(repo, ctx.actor.login))
        rendered.append(data)
    return 200, {"total_count": len(rendered), "repository_selection": "selected", "repositories": ctx.page(rendered)}


@api.route("DELETE", "/applications/{client_id}/token")
def revoke_user_token(ctx: Ctx):
    """The App revokes one of its user access tokens (sign-out): it stops working at once."""
    if ctx.params["client_id"] != ctx.state.app.client_id:
        raise not_found()
    token = (ctx.body or {}).get("access_token", "")
    if ctx.state.user_tokens.pop(token, None) is None:
        raise not_found()
    return 204, None
