"""Callback credentials for Actions runs: issued once per run, stored only as a SHA-256 hash.

Semantics (one token per run, `dsr_` + 32 random bytes, urlsafe):
- A run reports many events (progress, log batches) and then one final result. The token is valid for
  any number of non-final events of *its* run until it expires, and the final result CONSUMES it:
  after that every event with it is refused, so a replayed or second result cannot reach the app.
- It expires at the run's time limit plus a margin (the caller passes that as `ttl`).
- Runs authenticated by GitHub Actions OIDC instead still close their callback window through the
  same row: `consume_for_run` marks the run's outstanding token used when the result arrives.

Lookups go by the hash, so comparing a guess never touches the secret byte by byte (no timing leak),
and the consuming UPDATE is conditional on `used_at IS NULL`, so two concurrent results cannot both
win, on SQLite or PostgreSQL.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import select

from app.db import session_scope
from app.models import CallbackToken, utcnow

PREFIX = "dsr_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(engine: Engine, run_id: int, ttl: timedelta | float) -> str:
    """Create a callback token for `run_id`, valid for `ttl` (timedelta or seconds); returns the secret."""
    if not isinstance(ttl, timedelta):
        ttl = timedelta(seconds=ttl)
    token = PREFIX + secrets.token_urlsafe(32)
    with session_scope(engine) as session:
        session.add(CallbackToken(run_id=run_id, token_hash=hash_token(token), expires_at=utcnow() + ttl))
    return token


def verify(engine: Engine, run_id: int, token: str, *, consume: bool) -> bool:
    """True if `token` belongs to `run_id`, is unexpired and unused; with consume=True it is used up."""
    if not token or not token.startswith(PREFIX):
        return False
    digest = hash_token(token)
    now = utcnow()
    with session_scope(engine) as session:
        if consume:
            result = session.execute(
                update(CallbackToken)
                .where(
                    CallbackToken.token_hash == digest,
                    CallbackToken.run_id == run_id,
                    CallbackToken.used_at.is_(None),
                    CallbackToken.expires_at > now,
                )
                .values(used_at=now)
            )
            return result.rowcount == 1
        row = session.exec(
            select(CallbackToken).where(CallbackToken.token_hash == digest, CallbackToken.run_id == run_id)
        ).first()
        return row is not None and row.used_at is None and row.expires_at > now


def run_is_open(engine: Engine, run_id: int) -> bool:
    """True while `run_id` has an unused, unexpired token: its callback window is open (used for OIDC)."""
    now = utcnow()
    with session_scope(engine) as session:
        row = session.exec(
            select(CallbackToken.id).where(
                CallbackToken.run_id == run_id,
                CallbackToken.used_at.is_(None),
                CallbackToken.expires_at > now,
            )
        ).first()
        return row is not None


def consume_for_run(engine: Engine, run_id: int) -> bool:
    """Close `run_id`'s callback window (its final result arrived by OIDC); False if already closed."""
    now = utcnow()
    with session_scope(engine) as session:
        result = session.execute(
            update(CallbackToken)
            .where(
                CallbackToken.run_id == run_id,
                CallbackToken.used_at.is_(None),
                CallbackToken.expires_at > now,
            )
            .values(used_at=now)
        )
        return result.rowcount >= 1


def release(engine: Engine, run_id: int, token: str | None = None) -> None:
    """Reopen a window closed a moment ago because handling the result failed, so the runner can retry.

    Only tokens used in the last few minutes are reopened; a token that expired meanwhile stays shut.
    """
    recent = utcnow() - timedelta(minutes=5)
    conditions = [CallbackToken.run_id == run_id, CallbackToken.used_at.is_not(None), CallbackToken.used_at > recent]
    if token is not None:
        conditions.append(CallbackToken.token_hash == hash_token(token))
    with session_scope(engine) as session:
        session.execute(update(CallbackToken).where(*conditions).values(used_at=None))


def revoke(engine: Engine, run_id: int) -> None:
    """Close `run_id`'s callback window for good (run cancelled or ended without calling back)."""
    consume_for_run(engine, run_id)


def window_closes_at(engine: Engine, run_id: int) -> datetime | None:
    """When `run_id`'s last credential expires: after that its runner can report nothing more."""
    with session_scope(engine) as session:
        return session.exec(select(func.max(CallbackToken.expires_at)).where(CallbackToken.run_id == run_id)).one()
