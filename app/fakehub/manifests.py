"""GitHub's App manifest flow, faked: the new-App pages a manifest is posted to, the code conversion, the install page.

https://docs.github.com/en/apps/sharing-github-apps/registering-a-github-app-from-a-manifest
The fake holds one App: creating one from a manifest replaces it (new id, key and secrets), and its
webhooks go to the manifest's hook URL from then on.
"""

from __future__ import annotations

import html
import json
import random
import re
import secrets
import time
import weakref
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from cryptography.hazmat.primitives import serialization
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from app.fakehub import admin
from app.fakehub.hub import FakeHub, generate_private_key
from app.fakehub.routing import Api, Ctx, not_found
from app.fakehub.state import App, FakeHubState, User

api = Api()

# GitHub's codes last an hour and work once.
CODE_LIFETIME = 3600.0
# Who the browser is signed in as on the fake's pages (it has no sessions).
SIGNED_IN = "octocat"
_NEW_APP = re.compile(r"(?:/organizations/(?P<org>[A-Za-z0-9-]+))?/settings/apps/new")
_INSTALL = re.compile(r"/apps/(?P<slug>[a-z0-9-]+)/installations/new")
# Events GitHub refuses in a manifest's default_events: it sends them to every App anyway.
_REFUSED_EVENTS = {"installation", "installation_repositories"}


@dataclass
class Registration:
    """An App created from a manifest: what its conversion hands out once, and where installing it leads."""

    app: App
    pem: str
    client_secret: str
    manifest: dict[str, Any]
    created: float = field(default_factory=time.monotonic)


# Per fake: code -> registration (until converted), and the App's slug -> its registration.
_codes: weakref.WeakKeyDictionary[FakeHubState, dict[str, Registration]] = weakref.WeakKeyDictionary()
_apps: weakref.WeakKeyDictionary[FakeHubState, dict[str, Registration]] = weakref.WeakKeyDictionary()


def handles(path: str) -> bool:
    """Whether `path` is one of the web pages here (the REST route is in `api`)."""
    return bool(_NEW_APP.fullmatch(path) or _INSTALL.fullmatch(path))


async def page(hub: FakeHub, request: Request) -> Response:
    body = dict(parse_qsl((await request.body()).decode(errors="replace"), keep_blank_values=True))
    if found := _NEW_APP.fullmatch(request.url.path):
        return await run_in_threadpool(_new_app, hub, request, body, found["org"])
    slug = _INSTALL.fullmatch(request.url.path)["slug"]  # type: ignore[index]
    return await run_in_threadpool(_install, hub, request, body, slug)


def _html(title: str, content: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)} · fakehub</title><style>"
        "body{font:16px/1.5 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;color:#1f2328}"
        "header{background:#24292f;color:#fff;padding:12px 16px;font-weight:600}"
        "main{max-width:640px;margin:24px auto;padding:0 16px}dt{font-weight:600}dd{margin:0 0 8px}"
        "button{background:#1f883d;color:#fff;border:0;border-radius:6px;padding:8px 16px;font-size:16px}"
        "input[type=text]{font-size:16px;padding:6px;width:100%;max-width:320px}.flash{background:#ffebe9;padding:12px}"
        "</style></head><body><header>fakehub · GitHub</header>"
        f"<main>{content}</main></body></html>", status)


def _refuse(message: str) -> HTMLResponse:
    return _html("Invalid GitHub App configuration",
                 f'<h1>Invalid GitHub App configuration</h1><p class="flash">{html.escape(message)}</p>', 422)


def _manifest_problem(manifest: Any) -> str | None:
    """What GitHub would refuse in a manifest, or None."""
    if not isinstance(manifest, dict):
        return "The manifest must be a JSON object"
    for key in ("url", "name"):
        if not isinstance(manifest.get(key), str) or not manifest[key]:
            return f"{key} can't be blank"
    hook = manifest.get("hook_attributes") or {}
    if hook.get("active", True) and not hook.get("url"):
        return "Hook url can't be blank"
    refused = _REFUSED_EVENTS & set(manifest.get("default_events") or [])
    if refused:
        return f"Default events unsupported: {' and '.join(sorted(refused))}"
    return None


def _new_app(hub: FakeHub, request: Request, form: dict[str, str], org: str | None) -> Response:
    state = request.query_params.get("state")
    if request.method != "POST" or "manifest" not in form:
        return _html("Register new GitHub App", "<h1>Register new GitHub App</h1>"
                     "<p>Post a <code>manifest</code> form field here to register an App from a manifest.</p>")
    try:
        manifest = json.loads(form["manifest"])
    except ValueError:
        return _refuse("The manifest is not valid JSON")
    if problem := _manifest_problem(manifest):
        return _refuse(problem)
    owner = hub.state.user(org, type="Organization") if org else hub.state.user(SIGNED_IN)
    if form.get("create") != "1":
        return _confirmation(request, form["manifest"], manifest, owner)
    slug = re.sub(r"[^a-z0-9]+", "-", manifest["name"].lower()).strip("-")
    if hub.state.app is not None and hub.state.app.slug == slug:
        return _refuse("Name is already in use")
    registration = _register(hub.state, manifest, owner, slug)
    code = secrets.token_hex(20)
    _codes.setdefault(hub.state, {})[code] = registration
    query = {"code": code} | ({"state": state} if state is not None else {})
    return RedirectResponse(f"{manifest.get('redirect_url') or manifest['url']}?{urlencode(query)}", 302)


def _confirmation(request: Request, raw: str, manifest: dict[str, Any], owner: User) -> Response:
    permissions = ", ".join(f"{k}: {v}" for k, v in (manifest.get("default_permissions") or {}).items())
    return _html("Create GitHub App", (
        f"<h1>Create GitHub App for {html.escape(owner.login)}</h1>"
        f"<dl><dt>GitHub App name</dt><dd>{html.escape(manifest['name'])}</dd>"
        f"<dt>Homepage URL</dt><dd>{html.escape(manifest['url'])}</dd>"
        f"<dt>Webhook URL</dt><dd>{html.escape(str((manifest.get('hook_attributes') or {}).get('url')))}</dd>"
        f"<dt>Permissions</dt><dd>{html.escape(permissions)}</dd></dl>"
        f'<form method="post" action="{html.escape(str(request.url))}">'
        f'<input type="hidden" name="manifest" value="{html.escape(raw)}"><input type="hidden" name="create" value="1">'
        f"<button type=\"submit\">Create GitHub App for {html.escape(owner.login)}</button></form>"
    ))


def _register(state: FakeHubState, manifest: dict[str, Any], owner: User, slug: str) -> Registration:
    pem = generate_private_key()
    public = serialization.load_pem_private_key(pem, password=None).public_key()
    with state.lock:
        bot = state.user(f"{slug}[bot]", type="Bot")
        app = App(
            id=random.randrange(1_000_000, 9_000_000), slug=slug, name=manifest["name"], owner=owner, bot=bot,
            public_key_pem=public.public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo),
            webhook_secret=secrets.token_hex(20), client_id=f"Iv23li{secrets.token_hex(7)}",
        )
        state.app = app
        state.webhook_url = (manifest.get("hook_attributes") or {}).get("url")
        registration = Registration(app=app, pem=pem.decode(), client_secret=secrets.token_hex(20), manifest=manifest)
        _apps.setdefault(state, {})[slug] = registration
    return registration


@api.route("POST", "/app-manifests/{code}/conversions")
def convert_manifest_code(ctx: Ctx):
    """The new App's credentials, for the code its redirect carried: once, within the hour (else 404)."""
    registration = _codes.get(ctx.state, {}).pop(ctx.params["code"], None)
    if registration is None or time.monotonic() - registration.created > CODE_LIFETIME:
        raise not_found()
    app, manifest = registration.app, registration.manifest
    data = ctx.render.app(app)
    data.update(permissions=dict(manifest.get("default_permissions") or {}),
                events=list(manifest.get("default_events") or []), description=manifest.get("description"),
                external_url=manifest["url"], installations_count=0)
    return 201, data | {"client_id": app.client_id, "client_secret": registration.client_secret,
                        "webhook_secret": app.webhook_secret, "pem": registration.pem}


def _install(hub: FakeHub, request: Request, form: dict[str, str], slug: str) -> Response:
    app = hub.state.app
    if app is None or app.slug != slug:
        return _html("Page not found", "<h1>404</h1><p>This is not the web page you are looking for.</p>", 404)
    if request.method != "POST":
        return _html(f"Install {app.name}", (
            f"<h1>Install {html.escape(app.name)}</h1>"
            '<form method="post"><label for="account">Where do you want to install it?</label><br>'
            f'<input type="text" id="account" name="account" value="{html.escape(app.owner.login)}"><br><br>'
            "<button type=\"submit\">Install</button></form>"
        ))
    account = form.get("account") or app.owner.login
    admin.send_installation_created(hub, request, {"account": account, "sender": SIGNED_IN})
    installation = hub.install(account)
    setup_url = (_apps.get(hub.state, {}).get(slug) or Registration(app, "", "", {})).manifest.get("setup_url")
    if setup_url:
        query = urlencode({"installation_id": installation.id, "setup_action": "install"})
        return RedirectResponse(f"{setup_url}?{query}", 302)
    return _html("Installed", f"<h1>{html.escape(app.name)} is installed on {html.escape(account)}</h1>")
