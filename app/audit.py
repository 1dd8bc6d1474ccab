"""The audit log: every state change a person caused, with who, what, when and from where.

Writes never fail the action they record (a log that breaks the product is worse than a gap in it), and
never carry a secret's value: callers pass names, and details are scrubbed besides.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable
from datetime import datetime

from sqlmodel import Session, func, select

from app.logs import get_logger, scrub
from app.models import AuditEntry


def record(engine, *, actor: str, action: str, repo: str | None = None, installation_id: int | None = None,
           subject: str = "", source: str = "", details: str = "", secrets: Iterable[str] = ()) -> None:
    entry = AuditEntry(actor=actor[:255], action=action[:64], repo_full_name=repo, installation_id=installation_id,
                       subject=subject[:255], source=source[:255], details=scrub(details, list(secrets))[:4000])
    try:
        with Session(engine) as session:
            session.add(entry)
            session.commit()
    except Exception as exc:
        get_logger().warning("audit_write_failed", action=action, error_type=type(exc).__name__)


def shell_actor() -> str:
    """Who ran a CLI command on the server, as far as the operating system says."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no passwd entry (a container's arbitrary uid)
        return "cli:unknown"


def entries(engine, *, repo: str | None = None, since: datetime | None = None, limit: int = 1000) -> list[AuditEntry]:
    """Newest first."""
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if repo:  # GitHub's names are case-insensitive
        query = query.where(func.lower(AuditEntry.repo_full_name) == repo.lower())
    if since:
        query = query.where(AuditEntry.at >= since)
    with Session(engine) as session:
        return list(session.exec(query).all())


def line(entry: AuditEntry) -> str:
    """One entry as `draftsmith audit` prints it (pure)."""
    where = " ".join(part for part in (entry.repo_full_name or "", entry.source) if part)
    parts = [entry.at.strftime("%Y-%m-%d %H:%M:%S"), entry.actor, entry.action, entry.subject]
    text = "  ".join(part for part in parts if part)
    if where:
        text += f"  ({where})"
    if entry.details:
        text += f": {entry.details}"
    return text
