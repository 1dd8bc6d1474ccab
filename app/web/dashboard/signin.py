"""Sign in with GitHub: the App's user authorization (OAuth web flow with `state` and PKCE S256), and sign-out.

https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-user-access-token-for-a-github-app
The user token GitHub hands back is kept only inside the encrypted session cookie (app.web.dashboard.session)
and is never logged. The App's settings page must list `<public URL>/dashboard/callback` as a callback URL.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from urllib.parse import urlencode

import httpx
from githubkit.exception import GitHubException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.github.client import git_origin
from app.github.user_tokens import revoke_user_token
from app.logs import get_logger
from app.web.dashboard import common
from app.web.dashboard.session import SESSION_COOKIE, SIGNIN_COOKIE, SIGNIN_TTL_SECONDS, Session, csrf_ok, new_csrf

CALLBACK_PATH = "/dashboard/callback"


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, code_challenge) for S256 (RFC 7636): 43 URL-safe characters and their hash."""
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _callback_url(request: Request) -> str:
    public = request.app.state.runtime.settings.public_url
    base = public.rstrip("/") if public else str(request.base_url).rstrip("/")
    return base + CALLBACK_PATH


def _safe_next(value: str | None) -> str:
    # Only our own pages: an open redirect would turn the sign-in link into a phishing tool.
    if value and value.startswith("/dashboard") and not value.startswith("//"):
        return value
    return "/dashboard/"


async def start(request: Request) -> Response:
    """`GET /dashboard/login`: off to GitHub's authorize page, with a fresh state and PKCE challenge."""
    settings = request.app.state.runtime.settings
    missing = common.missing_signin_settings(settings)
    if missing:
        return common.message(request, None, "Sign-in is not set up",
                              "Signing in needs these settings: " + ", ".join(missing) + ". They are on the "
                              "GitHub App's settings page (Client ID, and a client secret you generate there).",
                              status_code=503)
    state = secrets.token_urlsafe(24)
    verifier, challenge = pkce_pair()
    query = {"client_id": settings.github_client_id, "redirect_uri": _callback_url(request), "state": state,
             "code_challenge": challenge, "code_challenge_method": "S256"}
    response = RedirectResponse(f"{git_origin(settings.github_api_url)}/login/oauth/authorize?{urlencode(query)}",
                                status_code=302)
    common.codec(request).set_cookie(response, SIGNIN_COOKIE, {
        "state": state, "verifier": verifier, "next": _safe_next(request.query_params.get("next"))},
        SIGNIN_TTL_SECONDS)
    return response


async def callback(request: Request) -> Response:
    """`GET /dashboard/callback?code&state`: check the state, trade the code (and verifier) for a user token."""
    settings = request.app.state.runtime.settings
    if common.missing_signin_settings(settings):
        return await start(request)  # says which settings are missing
    codec = common.codec(request)
    pending = codec.open(request.cookies.get(SIGNIN_COOKIE), SIGNIN_TTL_SECONDS)
    state = request.query_params.get("state", "")
    if request.query_params.get("error"):
        return _failed(request, request.query_params.get("error_description") or "GitHub did not authorize the sign-in.")
    if not pending or not state or not secrets.compare_digest(str(pending.get("state", "")), state):
        return _failed(request, "This sign-in link has expired or was not started here. Start again.")
    code = request.query_params.get("code", "")
    try:
        async with httpx.AsyncClient(timeout=20) as client:
            answer = (await client.post(
                f"{git_origin(settings.github_api_url)}/login/oauth/access_token",
                data={"client_id": settings.github_client_id,
                      "client_secret": settings.github_client_secret.get_secret_value(),
                      "code": code, "redirect_uri": _callback_url(request), "code_verifier": pending["verifier"]},
                headers={"Accept": "application/json"})).json()
    except (httpx.HTTPError, ValueError) as exc:
        get_logger().warning("dashboard_signin_failed", error_type=type(exc).__name__)
        return _failed(request, "GitHub could not be reached to finish signing in. Try again.")
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not token:
        get_logger().info("dashboard_signin_refused", error=answer.get("error") if isinstance(answer, dict) else None)
        return _failed(request, (answer or {}).get("error_description") or "GitHub refused the sign-in.")
    github = request.app.state.runtime.github
    try:
        user = (await github.user_client(token).arequest("GET", "/user")).json()
    except GitHubException as exc:
        get_logger().warning("dashboard_signin_failed", error_type=type(exc).__name__)
        return _failed(request, "GitHub did not say who signed in. Try again.")
    expires_in = int(answer.get("expires_in") or 8 * 3600)
    session = Session(login=user["login"], user_id=int(user["id"]), token=token,
                      expires_at=time.time() + expires_in, csrf=new_csrf())
    response = RedirectResponse(_safe_next(pending.get("next")), status_code=303)
    codec.start_session(response, session)
    response.delete_cookie(SIGNIN_COOKIE, path="/dashboard")
    get_logger().info("dashboard_signed_in", login=session.login)
    return response


def _failed(request: Request, why: str) -> Response:
    response = common.message(request, None, "Sign-in failed", why, status_code=400,
                              link=("/dashboard/login", "Sign in with GitHub"))
    response.delete_cookie(SIGNIN_COOKIE, path="/dashboard")
    return response


async def sign_out(request: Request) -> Response:
    """`POST /dashboard/logout` (a form with the CSRF token): the session cookie is dropped, the token revoked."""
    session = common.codec(request).session(request.cookies.get(SESSION_COOKIE))
    form = await common.form(request)
    if session is not None and not csrf_ok(session, form.get("csrf")):
        return common.forbidden_form(request, session)
    response = RedirectResponse("/dashboard/", status_code=303)
    common.codec(request).end_session(response)
    if session is not None:
        common.reach_cache(request).forget(session.token)
        await _revoke(request.app.state.runtime.settings, session.token)
    return response


async def _revoke(settings, token: str) -> None:
    if common.missing_signin_settings(settings):
        return
    await revoke_user_token(settings.github_api_url, settings.github_client_id,
                            settings.github_client_secret.get_secret_value(), token)
