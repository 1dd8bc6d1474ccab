"""Provider keys from the dashboard: list, add and delete, per installation and per repository, for admins.

Stored exactly as `draftsmith credentials set` stores them (app.credentials: AES-256-GCM under the master key),
and each change is an audit entry. A value is never shown again: only its last four characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from githubkit.exception import GitHubException
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app import audit
from app.credentials import CredentialError, CredentialInfo, CredentialStore, load_keyring
from app.web.dashboard import common, queries
from app.web.dashboard.reach import InstallationAccess, Reach
from app.web.dashboard.session import csrf_ok
from app.web.dashboard.tasks import _signed_in


@dataclass(frozen=True)
class Scope:
    """Where a person may manage keys in one installation: the whole of it, and/or some repositories."""

    installation: InstallationAccess
    whole: bool  # installation-wide keys
    repos: list[str]  # repositories they administer (lower-cased full names, as keys store them)


async def _installation_size(github_app, installation_id: int) -> int | None:
    """How many repositories the installation covers, as GitHub tells the App (None if it cannot say)."""
    try:
        answer = await github_app.installation_client(installation_id).arequest(
            "GET", "/installation/repositories", params={"per_page": 1})
        return int(answer.json()["total_count"])
    except (GitHubException, KeyError, ValueError):
        return None


async def scopes(github_app, reach: Reach) -> list[Scope]:
    """Repository admins manage that repository's keys. Installation-wide keys are for the account itself
    (a personal installation) or whoever administers every repository of the installation: the App cannot
    read organisation roles (it asks for no organisation permission), so this is what GitHub lets us check.
    "Every" is counted by the App's installation token, which sees repositories the person's token may not."""
    found = []
    for installation in sorted(reach.installations.values(), key=lambda i: i.account.lower()):
        repos = reach.repos_of(installation.id)
        admin_of = [r.full_name.lower() for r in repos if r.at_least("admin")]
        whole = installation.account.lower() == reach.login.lower()
        if not whole and admin_of and len(admin_of) == len(repos):
            whole = await _installation_size(github_app, installation.id) == len(repos)
        if whole or admin_of:
            found.append(Scope(installation, whole, admin_of))
    return found


def _store(request: Request) -> CredentialStore:
    runtime = request.app.state.runtime
    return CredentialStore(runtime.engine, load_keyring(runtime.settings))


@dataclass(frozen=True)
class KeyRow:
    info: CredentialInfo
    set_by: str | None


async def keys_page(request: Request) -> Response:
    """`GET /dashboard/keys`: the keys the person administers, and a form to add one."""
    signed = await _signed_in(request)
    if isinstance(signed, Response):
        return signed
    session, reach = signed
    engine = request.app.state.runtime.engine
    mine = await scopes(request.app.state.runtime.github, reach)
    store = _store(request)

    def load():
        setters = queries.key_setters(engine, [s.installation.id for s in mine])
        rows = {}
        for scope in mine:
            listed = [info for info in store.list(scope.installation.id)
                      if (info.repository is None and scope.whole) or info.repository in scope.repos]
            rows[scope.installation.id] = [KeyRow(info, getattr(setters.get(
                (info.installation_id, info.repository, info.name)), "actor", None)) for info in listed]
        return rows

    rows = await run_in_threadpool(load)
    return common.page(request, session, "Keys", "keys.html", scopes=mine, rows=rows,
                       saved=request.query_params.get("saved"), deleted=request.query_params.get("deleted"))


async def _authorised_scope(request: Request) -> tuple[dict, object, Scope, str | None] | Response:
    """The form's fields, the session, and the scope it names, if the person (asked of GitHub again) administers it."""
    fields = await common.form(request)
    session = common.session_of(request)
    if session is None or not csrf_ok(session, fields.get("csrf")):
        return common.forbidden_form(request, session)
    signed = await _signed_in(request, fresh=True)  # ask GitHub again before changing anything
    if isinstance(signed, Response):
        return signed
    session, reach = signed
    installation_id = fields.get("installation", "")
    repository = (fields.get("repository") or "").strip().lower() or None
    if not any(str(i) == installation_id for i in reach.installations):  # not theirs at all: nothing here
        return common.not_found(request, session, "installation")
    scope = next((s for s in await scopes(request.app.state.runtime.github, reach)
                  if str(s.installation.id) == installation_id), None)
    if scope is None or (repository is None and not scope.whole) or (repository is not None
                                                                     and repository not in scope.repos):
        return common.message(request, session, "Not allowed",
                              "Only an administrator of the repository (or, for installation-wide keys, of the "
                              "installation) can change its keys. Nothing was changed.", status_code=403,
                              link=("/dashboard/keys", "Back to keys"))
    return fields, session, scope, repository


async def add_key(request: Request) -> Response:
    """`POST /dashboard/keys`: store a key; the page after shows only its last four characters."""
    checked = await _authorised_scope(request)
    if isinstance(checked, Response):
        return checked
    fields, session, scope, repository = checked
    name, value = fields.get("name", "").strip(), fields.get("value", "").strip()
    try:
        await run_in_threadpool(_store(request).set, scope.installation.id, name, value, repository)
    except CredentialError as exc:
        return common.message(request, session, "Key not stored", str(exc), status_code=400,
                              link=("/dashboard/keys", "Back to keys"))
    where = f"repository {repository}" if repository else "every repository"
    audit.record(request.app.state.runtime.engine, actor=session.login, action="credential.set", repo=repository,
                 installation_id=scope.installation.id, subject=name, source="dashboard", details=f"for {where}",
                 secrets=[value])
    return RedirectResponse(f"/dashboard/keys?saved={name}", status_code=303)


async def delete_key(request: Request) -> Response:
    """`POST /dashboard/keys/delete`."""
    checked = await _authorised_scope(request)
    if isinstance(checked, Response):
        return checked
    fields, session, scope, repository = checked
    name = fields.get("name", "")
    if await run_in_threadpool(_store(request).delete, scope.installation.id, name, repository):
        audit.record(request.app.state.runtime.engine, actor=session.login, action="credential.deleted",
                     repo=repository, installation_id=scope.installation.id, subject=name, source="dashboard")
    return RedirectResponse(f"/dashboard/keys?deleted={name}", status_code=303)
