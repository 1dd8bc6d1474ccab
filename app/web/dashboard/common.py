"""What every dashboard page shares: the session and what it reaches, templates inside the shared layout."""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import parse_qsl, quote

from githubkit.exception import RequestFailed
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from app.web import layout
from app.web.dashboard import present
from app.web.dashboard.reach import Reach, ReachCache
from app.web.dashboard.session import SESSION_COOKIE, Session, SessionCodec

TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
TEMPLATES.filters.update(seconds=present.seconds, cost=present.cost, percent=present.percent,
                         status_label=present.status_label, diff_class=present.diff_line_class)


class SignedOut(Exception):
    """The session is missing, expired, or GitHub no longer accepts its token."""


MAX_FORM_BYTES = 64 * 1024


async def form(request: Request) -> dict[str, str]:
    """An HTML form's fields (application/x-www-form-urlencoded, all our forms send), without python-multipart,
    which Starlette's request.form() needs for the multipart kind we never use."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES or not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def missing_signin_settings(settings) -> list[str]:
    missing = [name for name, value in (("GITHUB_CLIENT_ID", settings.github_client_id),
                                        ("GITHUB_CLIENT_SECRET", settings.github_client_secret)) if not value]
    return settings.missing_github_settings() + missing


def codec(request: Request) -> SessionCodec:
    state = request.app.state
    if getattr(state, "dashboard_codec", None) is None:
        from app.credentials import load_keyring

        settings = state.runtime.settings
        ring = load_keyring(settings)
        keys = [ring.keys[ring.current_id]] + [k for i, k in ring.keys.items() if i != ring.current_id]
        state.dashboard_codec = SessionCodec(keys, secure=(settings.public_url or "").startswith("https://"))
    return state.dashboard_codec


def reach_cache(request: Request) -> ReachCache:
    state = request.app.state
    if getattr(state, "dashboard_reach", None) is None:
        state.dashboard_reach = ReachCache()
    return state.dashboard_reach


def session_of(request: Request) -> Session | None:
    return codec(request).session(request.cookies.get(SESSION_COOKIE))


async def reach_of(request: Request, session: Session, *, fresh: bool = False) -> Reach:
    try:
        return await reach_cache(request).get(request.app.state.runtime.github, session.token, session.login,
                                              fresh=fresh)
    except RequestFailed as exc:
        if exc.response.status_code == 401:  # revoked, or the App's authorization was removed
            raise SignedOut() from None
        raise


def sign_in_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"/dashboard/login?next={quote(target, safe='')}", status_code=303)
    codec(request).end_session(response)
    return response


def nav(session: Session | None) -> str:
    if session is None:
        return ' <a href="/dashboard/login">Sign in</a>'
    return (' <a href="/dashboard/">Tasks</a> <a href="/dashboard/usage">Usage</a> <a href="/dashboard/keys">Keys</a>'
            f' <span class="who">@{html.escape(session.login)}</span>'
            '<form method="post" action="/dashboard/logout" class="inline">'
            f'<input type="hidden" name="csrf" value="{html.escape(session.csrf)}">'
            '<button type="submit" class="link">Sign out</button></form>')


def page(request: Request, session: Session | None, title: str, template: str, *, status_code: int = 200,
         **values) -> HTMLResponse:
    body = TEMPLATES.get_template(template).render(session=session, csrf=session.csrf if session else "",
                                                   request=request, **values)
    return layout.page(title, body, status_code=status_code, nav=nav(session))


def message(request: Request, session: Session | None, title: str, text: str, *, status_code: int = 200,
            link: tuple[str, str] | None = None) -> HTMLResponse:
    return page(request, session, title, "message.html", status_code=status_code, heading=title, text=text, link=link)


def forbidden_form(request: Request, session: Session | None) -> HTMLResponse:
    return message(request, session, "This form has expired",
                   "The form was not sent from this page of the dashboard (its security token did not match), "
                   "so nothing was changed. Go back, reload the page and try again.", status_code=403)


def not_found(request: Request, session: Session | None, what: str) -> HTMLResponse:
    return message(request, session, "Not found",
                   f"No {what} here that your GitHub account can see.", status_code=404,
                   link=("/dashboard/", "All tasks"))
