"""Retention: delivery bodies, run logs, transcripts and diffs, and audit entries older than their setting go.

The sweeper calls prune() at most once an hour per process; each batch is its own short transaction, so
ingress (which commits under SQLite's one write lock) never waits long behind it. Rows are found oldest
first through their primary key (ids grow with time), so no timestamp index is needed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text

from app.models import utcnow

BATCH = 500
MAX_BATCHES = 20  # per kind and call: a long backlog is worked off over several sweeps
PRUNE_EVERY = timedelta(hours=1)

# kind -> (statement deleting up to :batch rows older than :cutoff, which retention applies)
_STATEMENTS = {
    "delivery_bodies": ("""
        DELETE FROM delivery_payloads WHERE id IN (
            SELECT payload_id FROM deliveries
            WHERE received_at < :cutoff AND status != 'received' AND payload_id IS NOT NULL
            ORDER BY received_at LIMIT :batch)""", "days"),
    "log_lines": ("""
        DELETE FROM log_lines WHERE id IN (
            SELECT id FROM log_lines WHERE created_at < :cutoff ORDER BY id LIMIT :batch)""", "days"),
    "artifacts": ("""
        DELETE FROM artifacts WHERE id IN (
            SELECT id FROM artifacts WHERE created_at < :cutoff AND kind IN ('transcript', 'diff')
            ORDER BY id LIMIT :batch)""", "days"),
    "audit_entries": ("""
        DELETE FROM audit_log WHERE id IN (
            SELECT id FROM audit_log WHERE at < :cutoff ORDER BY at LIMIT :batch)""", "audit_days"),
}
# A pruned body leaves its delivery row (the log of what arrived, and the dedupe on its id) behind.
_FORGET_BODIES = text("""
    UPDATE deliveries SET payload_id = NULL WHERE payload_id IS NOT NULL AND received_at < :cutoff
    AND status != 'received' AND payload_id NOT IN (SELECT id FROM delivery_payloads)""")


def prune(engine, *, days: int, audit_days: int, now: datetime | None = None, batch: int = BATCH) -> dict[str, int]:
    """Delete what is past retention; returns how many rows of each kind went."""
    now = now or utcnow()
    cutoffs = {"days": now - timedelta(days=days), "audit_days": now - timedelta(days=audit_days)}
    pruned = {}
    for kind, (statement, which) in _STATEMENTS.items():
        params = {"cutoff": cutoffs[which], "batch": batch}
        total = 0
        for _ in range(MAX_BATCHES):
            with engine.begin() as conn:
                deleted = conn.execute(text(statement), params).rowcount or 0
                if kind == "delivery_bodies" and deleted:
                    conn.execute(_FORGET_BODIES, {"cutoff": params["cutoff"]})
            total += deleted
            if deleted < batch:
                break
        pruned[kind] = total
    return pruned


def oldest(engine) -> dict[str, datetime | None]:
    """The oldest row still kept of each kind (what /metrics shows), each found through an index."""
    queries = {
        "delivery_bodies": "SELECT received_at FROM deliveries WHERE payload_id IS NOT NULL ORDER BY received_at LIMIT 1",
        "log_lines": "SELECT created_at FROM log_lines ORDER BY id LIMIT 1",
        "artifacts": "SELECT created_at FROM artifacts ORDER BY id LIMIT 1",
        "audit_entries": "SELECT at FROM audit_log ORDER BY at LIMIT 1",
    }
    found = {}
    with engine.connect() as conn:
        for kind, query in queries.items():
            value = conn.execute(text(query)).scalar()
            found[kind] = datetime.fromisoformat(value) if isinstance(value, str) else value
    return found
