"""Keep the installations and repositories tables current from installation and installation_repositories events."""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.events.router import Router
from app.handlers.context import Context
from app.models import Installation, Repository, utcnow

router = Router()


def _account(payload: dict[str, Any]) -> dict[str, Any]:
    installation = payload.get("installation") or {}
    account = installation.get("account") or {}
    return {"account_login": account.get("login"), "account_type": account.get("type") or installation.get("target_type")}


def upsert_installation(session: Session, installation_id: int, payload: dict[str, Any], **changes: Any) -> Installation:
    """Create the installation if we have never seen it (GitHub drops deliveries), then apply `changes`."""
    row = session.get(Installation, installation_id)
    account = {k: v for k, v in _account(payload).items() if v is not None}
    if row is None:
        row = Installation(id=installation_id, **account)
    else:
        for key, value in account.items():
            setattr(row, key, value)
    for key, value in changes.items():
        setattr(row, key, value)
    row.updated_at = utcnow()
    session.add(row)
    return row


def upsert_repositories(session: Session, installation_id: int, repos: list[dict[str, Any]], *, removed: bool) -> None:
    for repo in repos or []:
        if not isinstance(repo, dict) or not isinstance(repo.get("id"), int):
            continue
        row = session.get(Repository, repo["id"]) or Repository(
            id=repo["id"], installation_id=installation_id, full_name=repo.get("full_name") or ""
        )
        row.installation_id = installation_id
        row.full_name = repo.get("full_name") or row.full_name
        row.private = bool(repo.get("private", row.private))
        row.removed = removed
        row.updated_at = utcnow()
        session.add(row)


def _write(engine: Engine, fn, attempts: int = 3) -> None:
    """Run `fn` in a transaction; if a concurrent worker inserted the same row first, run it again
    (it then finds the row and updates it)."""
    for attempt in range(attempts):
        with Session(engine) as session:
            try:
                fn(session)
                session.commit()
                return
            except IntegrityError:
                session.rollback()
                if attempt == attempts - 1:
                    raise


@router.register("installation", action="created")
@router.register("installation", action="new_permissions_accepted")
async def record_new_installation(ctx: Context) -> None:
    payload = ctx.event.payload
    installation_id = ctx.event.installation_id

    def apply(session: Session) -> None:
        upsert_installation(session, installation_id, payload, deleted=False, suspended=False)
        upsert_repositories(session, installation_id, payload.get("repositories") or [], removed=False)

    _write(ctx.engine, apply)
    ctx.log.info("installation_recorded", installation_id=installation_id)


@router.register("installation", action="deleted")
async def record_uninstall(ctx: Context) -> None:
    installation_id = ctx.event.installation_id

    def apply(session: Session) -> None:
        upsert_installation(session, installation_id, ctx.event.payload, deleted=True)
        session.exec(  # type: ignore[call-overload]
            update(Repository).where(Repository.installation_id == installation_id).values(removed=True, updated_at=utcnow())
        )

    _write(ctx.engine, apply)
    if ctx.runtime.github is not None:
        ctx.runtime.github.forget_token(installation_id)
    ctx.log.info("installation_deleted", installation_id=installation_id)


@router.register("installation", action="suspend")
async def record_suspension(ctx: Context) -> None:
    _write(ctx.engine, lambda s: upsert_installation(s, ctx.event.installation_id, ctx.event.payload, suspended=True))
    ctx.log.info("installation_suspended", installation_id=ctx.event.installation_id)


@router.register("installation", action="unsuspend")
async def record_unsuspension(ctx: Context) -> None:
    _write(ctx.engine, lambda s: upsert_installation(s, ctx.event.installation_id, ctx.event.payload, suspended=False))
    ctx.log.info("installation_unsuspended", installation_id=ctx.event.installation_id)


@router.register("installation_repositories", action="added")
async def record_added_repositories(ctx: Context) -> None:
    installation_id = ctx.event.installation_id

    def apply(session: Session) -> None:
        upsert_installation(session, installation_id, ctx.event.payload)
        upsert_repositories(session, installation_id, ctx.event.payload.get("repositories_added") or [], removed=False)

    _write(ctx.engine, apply)
    if ctx.runtime.github is not None:  # the cached token does not reach the new repositories
        ctx.runtime.github.forget_token(installation_id)


@router.register("installation_repositories", action="removed")
async def record_removed_repositories(ctx: Context) -> None:
    installation_id = ctx.event.installation_id

    def apply(session: Session) -> None:
        upsert_installation(session, installation_id, ctx.event.payload)
        upsert_repositories(session, installation_id, ctx.event.payload.get("repositories_removed") or [], removed=True)

    _write(ctx.engine, apply)


# (installation id, repository id) pairs known to have rows, per engine: installation and repository
# rows are never deleted (only marked), so once seen, every later event of theirs skips the session and
# its two reads. Keyed by engine so a process talking to another database (tests) asks again.
_known: weakref.WeakKeyDictionary[Engine, set[tuple[int, int | None]]] = weakref.WeakKeyDictionary()


def remember_installation(engine: Engine, event) -> None:
    """Record an installation (and the event's repository) we have no row for yet.

    Runs before routing for every event: GitHub sometimes drops the `installation.created`
    delivery, and later events must still find their installation.
    """
    installation_id = event.installation_id
    if installation_id is None:
        return
    repo = event.payload.get("repository")
    repo_id = repo.get("id") if isinstance(repo, dict) else None
    key = (installation_id, repo_id if isinstance(repo_id, int) else None)
    known = _known.get(engine)
    if known is not None and key in known:
        return

    def apply(session: Session) -> None:
        if session.get(Installation, installation_id) is None:
            upsert_installation(session, installation_id, event.payload)
        if isinstance(repo_id, int) and session.get(Repository, repo_id) is None:
            upsert_repositories(session, installation_id, [repo], removed=False)

    _write(engine, apply)
    if known is None:
        known = _known.setdefault(engine, set())
    if len(known) > 100_000:  # bound the memory; re-checking costs two reads
        known.clear()
    known.add(key)
