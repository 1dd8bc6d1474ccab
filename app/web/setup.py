"""/setup: register the GitHub App from app.yml (GitHub's manifest flow), keep its credentials, send on to install it.

GET /setup explains and asks for a name, a GitHub and an owner; POST /setup shows the manifest and posts it to
GitHub with a fresh `state`; GitHub sends the browser to /setup/callback with a code, exchanged here for the
App's credentials, which go to the data dir's settings file (app.settings.APP_SETTINGS_FILE). `serve` notices
that file and restarts its web and worker processes onto it (app.cli._serve).
https://docs.github.com/en/apps/sharing-github-apps/registering-a-github-app-from-a-manifest
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import ipaddress
import json
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from app.github import manifest
from app.logs import get_logger
from app.relay.events import shown_channel
from app.relay.subscriber import RelayError, create_channel
from app.settings import Settings, app_settings_path, write_app_settings
from app.web import layout
from app.web.webhooks import PATH as WEBHOOK_PATH

# Long enough to sign in to GitHub and pick a free name there, short enough that a leaked link soon dies.
STATE_LIFETIME = timedelta(minutes=30)
COOKIE = "draftsmith_setup"
DEFAULT_RELAY_SERVER = "https://smee.io"
# What the settings file holds; any of them set in the environment or .env would win over it.
WRITTEN_SETTINGS = {
    "github_app_id": "GITHUB_APP_ID",
    "github_private_key": "GITHUB_PRIVATE_KEY",
    "github_private_key_path": "GITHUB_PRIVATE_KEY_PATH",
    "github_webhook_secret": "GITHUB_WEBHOOK_SECRET",
    "github_client_id": "GITHUB_CLIENT_ID",
    "github_client_secret": "GITHUB_CLIENT_SECRET",
}
# Not settings: what the pages here show of the App the file belongs to (Settings ignores them).
NAME_KEY, SLUG_KEY, HTML_URL_KEY = "GITHUB_APP_NAME", "GITHUB_APP_SLUG", "GITHUB_APP_HTML_URL"

log = get_logger(component="setup")


def webhook_url(settings: Settings, base_url: str, relay_channel: str | None = None) -> str:
    """Where the new App's webhooks go: a relay channel (one /setup just created, or
    DRAFTSMITH_WEBHOOK_RELAY_URL), else DRAFTSMITH_PUBLIC_URL's ingress, else that of the URL /setup was
    opened at."""
    if relay_channel or settings.webhook_relay_url:
        return relay_channel or settings.webhook_relay_url
    return f"{(settings.public_url or base_url).rstrip('/')}{WEBHOOK_PATH}"


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _page(title: str, body: str, status_code: int = 200) -> Response:
    response = layout.page(title, body, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def _refusal(title: str, why: str, status_code: int = 400) -> Response:
    return _page(title, f"<h1>{html.escape(title)}</h1><p>{why}</p><p>Nothing was saved. "
                        '<a href="/setup">Start the set-up again</a>.</p>', status_code)


# -- what is there already -------------------------------------------------------------------------------

@dataclass
class _Existing:
    name: str
    html_url: str | None
    where: str  # HTML: the settings file's path, or "the environment or .env"


async def _existing_app(request: Request) -> _Existing | None:
    """The App this server already has: written by an earlier /setup (maybe a moment ago, in another
    process, which restarts onto it), or configured by hand."""
    runtime = request.app.state.runtime
    settings: Settings = runtime.settings
    path = app_settings_path(settings)
    if path.is_file():
        from dotenv import dotenv_values

        values = await run_in_threadpool(dotenv_values, path)
        name = values.get(NAME_KEY) or values.get(SLUG_KEY) or f"GitHub App {values.get('GITHUB_APP_ID')}"
        return _Existing(name, values.get(HTML_URL_KEY), f"<code>{html.escape(str(path))}</code>")
    if settings.missing_github_settings():
        return None
    name, url = f"GitHub App {settings.github_app_id}", None
    try:  # GET /app, for the name and link; the page still answers when GitHub does not
        identity = await asyncio.wait_for(runtime.identity(), 5)
        if identity is not None:
            name = identity.name
            url = f"{manifest.web_url_for(settings.github_api_url)}/apps/{identity.slug}"
    except Exception as exc:
        log.warning("setup_identity_unavailable", error_type=type(exc).__name__)
    return _Existing(name, url, "the environment or <code>.env</code>")


def _already_set_up(existing: _Existing, status_code: int = 200) -> Response:
    link = (f'<a href="{html.escape(existing.html_url)}">{html.escape(existing.name)}</a>'
            if existing.html_url else html.escape(existing.name))
    install = (f'<p><a class="button" href="{html.escape(existing.html_url)}/installations/new">'
               "Install it on repositories</a></p>" if existing.html_url else "")
    return _page("Set up", (
        "<h1>The GitHub App is set up</h1>"
        f"<p>Draftsmith already has its GitHub App, {link}, from {existing.where}. There is nothing to set up, "
        "and nothing was changed.</p>"
        f"{install}"
        "<p>To register another App instead, delete that file (or those settings) first; "
        '<a href="/">the status page</a> says when Draftsmith runs without one.</p>'
    ), status_code)


def _shadowing(settings: Settings) -> list[str]:
    """Settings given in the environment or .env that would win over what the set-up writes."""
    return [name for field, name in WRITTEN_SETTINGS.items() if field in settings.model_fields_set]


def _shadowed_page(names: list[str]) -> Response:
    listed = ", ".join(f"<code>{html.escape(n)}</code>" for n in names)
    return _page("Set up", (
        "<h1>Finish the App's settings by hand, or remove them</h1>"
        f"<p>{listed} {'is' if len(names) == 1 else 'are'} already set in the environment or <code>.env</code>, "
        "and would win over the settings this set-up writes, so the new App would not work. Remove "
        f"{'it' if len(names) == 1 else 'them'} and restart Draftsmith to register the App here, or add the "
        'missing settings by hand (<a href="/">the status page</a> lists them).</p>'
    ), 409)


# -- GET and POST /setup -----------------------------------------------------------------------------------

@dataclass
class _Choice:
    name: str
    web_url: str
    api_url: str
    organization: str | None
    relay_server: str | None = None  # create a channel there and make it the webhook URL


def _fixed_web_url(settings: Settings) -> str | None:
    """The GitHub the operator chose with GITHUB_API_URL, if they did (then it is not asked)."""
    return manifest.web_url_for(settings.github_api_url) if "github_api_url" in settings.model_fields_set else None


def _parse(form: dict[str, str], settings: Settings) -> tuple[_Choice | None, list[str]]:
    errors = []
    name = str(form.get("name", "")).strip()
    if not manifest.NAME_PATTERN.fullmatch(name):
        errors.append("The App's name: 1 to 34 letters, digits, spaces, dots, dashes or underscores.")
    fixed = _fixed_web_url(settings)
    if fixed:
        web_url, api_url = fixed, settings.github_api_url.rstrip("/")
    elif form.get("github") == "enterprise":
        host = str(form.get("host", "")).strip().removeprefix("https://").rstrip("/")
        if not manifest.HOST_PATTERN.fullmatch(host):
            errors.append("The GitHub Enterprise Server host: a name such as github.example.com.")
        web_url = f"https://{host}"
        api_url = manifest.api_url_for(web_url)
    else:
        web_url, api_url = manifest.GITHUB_COM, manifest.GITHUB_COM_API
    organization = None
    if form.get("owner") == "organization":
        organization = str(form.get("organization", "")).strip()
        if not manifest.LOGIN_PATTERN.fullmatch(organization):
            errors.append("The organisation: its login as in its URL, e.g. acme for github.com/acme.")
    relay_server = None
    if form.get("relay") == "on" and not settings.webhook_relay_url:
        relay_server = str(form.get("relay_server", "")).strip().rstrip("/") or DEFAULT_RELAY_SERVER
        if not re.fullmatch(r"https?://[^/\s]+(/[^\s]*)?", relay_server):
            errors.append("The relay server: its address, such as https://smee.io.")
    if errors:
        return None, errors
    return _Choice(name, web_url, api_url, organization, relay_server), []


def _checked(condition: bool) -> str:
    return " checked" if condition else ""


def _form_page(settings: Settings, form: dict[str, str], errors: list[str] = (), status_code: int = 200) -> Response:
    value = lambda key, default="": html.escape(str(form.get(key, default)))  # noqa: E731
    fixed = _fixed_web_url(settings)
    if fixed:
        github = (f"<p>On the GitHub at <code>{html.escape(fixed)}</code> "
                  "(<code>GITHUB_API_URL</code> says so).</p>")
    else:
        enterprise = form.get("github") == "enterprise"
        github = (
            "<fieldset><legend>Which GitHub</legend>"
            f'<input type="radio" id="github-com" name="github" value="github.com"{_checked(not enterprise)}> '
            '<label for="github-com">github.com</label><br>'
            f'<input type="radio" id="github-enterprise" name="github" value="enterprise"{_checked(enterprise)}> '
            '<label for="github-enterprise">GitHub Enterprise Server, at</label>'
            f'<input type="text" name="host" placeholder="github.example.com" value="{value("host")}" '
            'aria-label="GitHub Enterprise Server host" autocapitalize="none" spellcheck="false">'
            "</fieldset>"
        )
    organization = form.get("owner") == "organization"
    problems = "".join(f"<li>{html.escape(e)}</li>" for e in errors)
    return _page("Set up", (
        "<h1>Register Draftsmith's GitHub App</h1>"
        "<p>Draftsmith asks GitHub to create a GitHub App with the events and permissions in "
        "<code>app.yml</code>, its webhooks pointed at this server. Here is what happens:</p>"
        "<ol><li>You choose its name and owner here, and check what it asks for.</li>"
        "<li>GitHub shows you the App and asks you to create it.</li>"
        "<li>GitHub sends you back here. Draftsmith saves the App's id, private key, webhook secret and "
        f"client secret in <code>{html.escape(str(app_settings_path(settings)))}</code> (readable by its user "
        "only) and starts using them at once, with no restart.</li>"
        "<li>You go on to GitHub to install the App on the repositories it may work on.</li></ol>"
        + (f'<div class="notice" role="alert"><ul>{problems}</ul></div>' if problems else "")
        + '<form method="post" action="/setup">'
        '<label for="name">The App\'s name (unique on GitHub; its bot is called after it)</label>'
        f'<input type="text" id="name" name="name" required maxlength="34" value="{value("name", "Draftsmith")}">'
        f"{github}"
        "<fieldset><legend>Who owns it</legend>"
        f'<input type="radio" id="owner-user" name="owner" value="user"{_checked(not organization)}> '
        '<label for="owner-user">My personal account</label><br>'
        f'<input type="radio" id="owner-organization" name="owner" value="organization"{_checked(organization)}> '
        '<label for="owner-organization">An organisation I manage:</label>'
        f'<input type="text" name="organization" placeholder="acme" value="{value("organization")}" '
        'aria-label="Organisation login" autocapitalize="none" spellcheck="false">'
        "</fieldset>"
        + _relay_fieldset(settings, form)
        + '<button type="submit">Review the App</button>'
        "</form>"
    ), status_code)


def _relay_fieldset(settings: Settings, form: dict[str, str]) -> str:
    if settings.webhook_relay_url:
        return ""  # a relay is configured already; the App's webhooks go to its channel
    server = html.escape(str(form.get("relay_server", DEFAULT_RELAY_SERVER)))
    return (
        "<fieldset><legend>Webhooks</legend>"
        f'<label><input type="checkbox" name="relay" value="on"{_checked(form.get("relay") == "on")}> '
        "GitHub cannot reach this server (a laptop, a private network): relay webhooks through a channel</label>"
        '<label for="relay-server">Relay server</label>'
        f'<input type="text" id="relay-server" name="relay_server" value="{server}" autocapitalize="none" '
        'spellcheck="false">'
        "<small>Draftsmith creates a channel there, makes it the App's webhook URL and subscribes to it. Anyone "
        "who knows the channel's address can read the deliveries.</small>"
        "</fieldset>"
    )


def _unreachable(url: str) -> bool:
    """Whether GitHub.com could never deliver to `url` (a loopback or private address)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


async def _blocked(request: Request, status_code: int = 409) -> Response | None:
    """The page saying why no set-up happens here (an App exists, or settings would shadow its own), or None."""
    existing = await _existing_app(request)
    if existing is not None:
        return _already_set_up(existing, status_code)
    if shadowing := _shadowing(request.app.state.runtime.settings):
        return _shadowed_page(shadowing)
    return None


async def start(request: Request) -> Response:
    if (blocked := await _blocked(request, 200)) is not None:
        return blocked  # a second visit: the App exists, nothing to do
    return _form_page(request.app.state.runtime.settings, {})


def _remember(engine, state: str, choice: _Choice, relay_url: str | None) -> None:
    from sqlalchemy import delete

    from app.db import session_scope
    from app.models import SetupState, utcnow

    now = utcnow()
    with session_scope(engine) as session:
        stale = delete(SetupState).where(SetupState.expires_at < now - timedelta(days=1))
        session.exec(stale)  # type: ignore[call-overload]
        session.add(SetupState(state_hash=_hash(state), web_url=choice.web_url, api_url=choice.api_url,
                               relay_url=relay_url, created_at=now, expires_at=now + STATE_LIFETIME))


async def review(request: Request) -> Response:
    runtime = request.app.state.runtime
    settings: Settings = runtime.settings
    if (blocked := await _blocked(request)) is not None:
        return blocked
    # A urlencoded form of four fields: parsed here rather than adding python-multipart for it.
    form = dict(parse_qsl((await request.body()).decode(errors="replace"), keep_blank_values=True))
    choice, errors = _parse(form, settings)
    if choice is None:
        return _form_page(settings, form, errors, 400)

    channel = None
    if choice.relay_server:
        try:
            channel = await create_channel(choice.relay_server)
        except (RelayError, httpx.HTTPError) as exc:
            log.warning("setup_relay_channel_failed", error_type=type(exc).__name__)
            return _form_page(settings, form, [f"No channel could be created at {choice.relay_server} "
                                               f"({type(exc).__name__}); try again, or another relay server."], 502)
    state = secrets.token_urlsafe(32)
    await run_in_threadpool(_remember, runtime.engine, state, choice, channel)
    base = str(request.base_url).rstrip("/")
    public = (settings.public_url or base).rstrip("/")
    hook = webhook_url(settings, base, channel)
    built = manifest.build_manifest(
        name=choice.name, homepage_url=public, webhook_url=hook,
        # Where this browser is sent back: the address it reached us at, whatever the public URL.
        redirect_url=f"{base}/setup/callback", setup_url=f"{public}/setup/installed",
    )
    target = manifest.new_app_url(choice.web_url, state, choice.organization)
    owner = (f"the organisation <code>{html.escape(choice.organization)}</code>" if choice.organization
             else "your personal account")
    warning = ""
    if channel is None and _unreachable(hook) and not _unreachable(choice.web_url):
        warning = ('<div class="notice" role="alert"><p>GitHub cannot reach '
                   f"<code>{html.escape(hook)}</code>, so its webhooks will fail until this server has an address "
                   "GitHub reaches. Set <code>DRAFTSMITH_PUBLIC_URL</code> to it, restart, and start again; or "
                   "create the App now and change its webhook URL on GitHub later.</p></div>")
    permissions = ", ".join(f"{html.escape(k)}: {html.escape(v)}" for k, v in built["default_permissions"].items())
    events = ", ".join(html.escape(e) for e in built["default_events"])
    response = _page("Set up", (
        "<h1>Create the App on GitHub</h1>"
        f"<p>GitHub will create this App for {owner}, and ask you to confirm first.</p>"
        f"{warning}"
        '<dl class="facts">'
        f"<dt>Name</dt><dd>{html.escape(choice.name)}</dd>"
        f"<dt>GitHub</dt><dd><code>{html.escape(choice.web_url)}</code></dd>"
        f"<dt>Webhooks to</dt><dd><code>{html.escape(shown_channel(hook) if channel else hook)}</code>"
        f"{' (a relay channel this server subscribes to)' if channel else ''}</dd>"
        f"<dt>Permissions</dt><dd>{permissions}</dd>"
        f"<dt>Events</dt><dd>{events}</dd>"
        "</dl>"
        f'<form method="post" action="{html.escape(target)}">'
        f'<input type="hidden" name="manifest" value="{html.escape(json.dumps(built))}">'
        '<button type="submit">Create the App on GitHub</button> '
        '<a href="/setup">Change something</a>'
        "</form>"
    ))
    # Ties GitHub's redirect back to this browser: a callback carrying another state is refused.
    response.set_cookie(COOKIE, state, max_age=int(STATE_LIFETIME.total_seconds()), path="/setup",
                        httponly=True, samesite="lax", secure=base.startswith("https://"))
    return response


# -- GET /setup/callback -----------------------------------------------------------------------------------

def _use_state(engine, state: str):
    """The attempt `state` names, now marked used; or why it cannot be: unknown, used or expired."""
    from sqlalchemy import update

    from app.db import session_scope
    from app.models import SetupState, utcnow

    now = utcnow()
    with session_scope(engine) as session:
        row = session.get(SetupState, _hash(state))
        if row is None:
            return None, "unknown"
        if row.used_at is not None:
            return None, "used"
        if row.expires_at <= now:
            return None, "expired"
        taken = session.exec(update(SetupState)  # type: ignore[call-overload]
                             .where(SetupState.state_hash == row.state_hash, SetupState.used_at.is_(None))
                             .values(used_at=now)).rowcount
        return (row, None) if taken == 1 else (None, "used")


_STATE_PROBLEMS = {
    "unknown": "This answer does not belong to a set-up this Draftsmith started.",
    "used": "This set-up was finished already: each answer from GitHub is used once.",
    "expired": f"This set-up was started more than {int(STATE_LIFETIME.total_seconds() // 60)} minutes ago "
               "and has expired.",
}
_NEEDED = ("id", "slug", "pem", "webhook_secret", "client_id", "client_secret")


class _Refused(Exception):
    def __init__(self, why: str, status_code: int = 400) -> None:
        super().__init__(why)
        self.status_code = status_code


async def _convert(api_url: str, code: str) -> dict:
    """POST /app-manifests/{code}/conversions: the new App's id, slug, key and secrets (no auth; one use per code)."""
    url = f"{api_url.rstrip('/')}/app-manifests/{quote(code, safe='')}/conversions"
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(url, headers={"Accept": "application/vnd.github+json",
                                                       "X-GitHub-Api-Version": "2022-11-28"})
    except httpx.HTTPError as exc:
        raise _Refused(f"Draftsmith could not reach GitHub at <code>{html.escape(api_url)}</code> "
                       f"({html.escape(type(exc).__name__)}).", 502) from None
    if response.status_code != 201:
        try:
            message = str(response.json().get("message", ""))
        except ValueError:
            message = ""
        log.warning("setup_conversion_refused", status=response.status_code)
        raise _Refused(f"GitHub refused the code it sent (HTTP {response.status_code}"
                       f"{': ' + html.escape(message) if message else ''}). A code works once, within an hour.")
    data = response.json()
    if not isinstance(data, dict) or any(not data.get(key) for key in _NEEDED):
        raise _Refused("GitHub's answer lacks the App's credentials. If the App was created, delete it on GitHub "
                       "and start again.")
    return data


def _written(data: dict, api_url: str, relay_url: str | None = None) -> dict[str, str]:
    values = {
        "GITHUB_APP_ID": str(data["id"]),
        "GITHUB_PRIVATE_KEY": data["pem"],
        "GITHUB_WEBHOOK_SECRET": data["webhook_secret"],
        "GITHUB_CLIENT_ID": data["client_id"],
        "GITHUB_CLIENT_SECRET": data["client_secret"],
    }
    if api_url.rstrip("/") != manifest.GITHUB_COM_API:
        values["GITHUB_API_URL"] = api_url.rstrip("/")
    if relay_url:
        values["DRAFTSMITH_WEBHOOK_RELAY_URL"] = relay_url
    values[SLUG_KEY] = data["slug"]
    values[NAME_KEY] = str(data.get("name") or data["slug"])
    if data.get("html_url"):
        values[HTML_URL_KEY] = str(data["html_url"])
    return values


async def callback(request: Request) -> Response:
    runtime = request.app.state.runtime
    settings: Settings = runtime.settings
    if (blocked := await _blocked(request)) is not None:
        return blocked  # e.g. GitHub's answer replayed after the set-up: nothing is written again
    state = request.query_params.get("state", "")
    code = request.query_params.get("code", "")
    if not state or not code:
        return _refusal("Not a set-up answer", "GitHub's answer carries a <code>code</code> and a "
                                               "<code>state</code>; this one lacks one.")
    if not secrets.compare_digest(request.cookies.get(COOKIE, "").encode(), state.encode()):
        return _refusal("Not this browser's set-up", "This answer does not belong to the set-up started in this "
                                                     "browser (or that set-up expired).")
    row, problem = await run_in_threadpool(_use_state, runtime.engine, state)
    if row is None:
        return _refusal("Set-up refused", _STATE_PROBLEMS[problem])
    try:
        data = await _convert(row.api_url, code)
    except _Refused as refused:
        return _refusal("GitHub refused", str(refused), refused.status_code)

    path = app_settings_path(settings)
    comment = (f'The GitHub App "{data.get("name") or data["slug"]}", registered by Draftsmith\'s /setup.\n'
               "Settings in the environment or .env win over these. Keep this file secret.")
    try:
        await run_in_threadpool(write_app_settings, path, _written(data, row.api_url, row.relay_url), comment)
    except FileExistsError:
        return _already_set_up(await _existing_app(request), 409)
    log.info("github_app_registered", app_id=data["id"], slug=data["slug"], settings_file=str(path))
    response = RedirectResponse(manifest.installation_url(row.web_url, data["slug"]), status_code=303)
    response.delete_cookie(COOKIE, path="/setup")
    return response


async def installed(request: Request) -> Response:
    """GitHub's setup_url: where it sends people once they installed the App."""
    return _page("Installed", (
        "<h1>Draftsmith is installed</h1>"
        "<p>In a repository you gave it, assign an issue to the App's bot, or mention it in a comment, and it "
        'starts working. <a href="/">The status page</a> shows whether it is connected.</p>'
    ))


routes = [
    Route("/setup", start, methods=["GET"]),
    Route("/setup", review, methods=["POST"]),
    Route("/setup/callback", callback, methods=["GET"]),
    Route("/setup/installed", installed, methods=["GET"]),
]
