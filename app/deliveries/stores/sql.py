"""The SQL store: the delivery log through SQLAlchemy (record, read what waits, store outcomes, find the unfinished)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, insert, or_, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from app.deliveries.records import RECEIVED, NewDelivery, pack
from app.deliveries.stores.sqlite import lock_busy_when_locked, retry_while_busy
from app.models import Delivery, DeliveryPayload, utcnow


def _insert_ignoring_duplicates(engine: Engine, table):
    dialect = engine.dialect.name
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=["id"])
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["id"])
    return insert(table)


# The database numbers the bodies (a sequence on PostgreSQL); RETURNING in parameter order maps each
# number back to its delivery.
_INSERT_PAYLOADS = insert(DeliveryPayload.__table__).returning(
    DeliveryPayload.__table__.c.id, sort_by_parameter_order=True)
_POINT_TO_PAYLOAD = (
    update(Delivery.__table__)
    .where(Delivery.__table__.c.id == bindparam("delivery_id"))
    .values(payload_id=bindparam("pid"))
)


def record_batch(engine: Engine, deliveries: Sequence[NewDelivery]) -> set[str]:
    """Insert deliveries in one transaction; returns the ids that were new (not redeliveries)."""
    now = utcnow()
    # The same id twice in one batch (GitHub redelivering at once) must insert once: the first copy,
    # as on the SQLite path.
    first_copies: dict[str, NewDelivery] = {}
    for d in deliveries:
        first_copies.setdefault(d.id, d)
    unique = [
        {
            "id": d.id,
            "event": d.event,
            "action": d.action,
            "installation_id": d.installation_id,
            "status": RECEIVED,
            "attempts": 0,
            "received_at": now,
            # Set optimistically: we enqueue right after commit, and clear it only if that fails,
            # so the common path costs one write. The sweeper re-enqueues anything left behind.
            "enqueued_at": now,
        }
        for d in first_copies.values()
    ]
    insert_rows = _insert_ignoring_duplicates(engine, Delivery.__table__).returning(Delivery.__table__.c.id)

    def write(conn) -> set[str]:
        new = set(conn.execute(insert_rows, unique).scalars().all())
        if new:  # a redelivery's body is already stored
            ids = [i for i in first_copies if i in new]
            payload_ids = conn.execute(
                _INSERT_PAYLOADS, [{"payload_lz4": pack(first_copies[i].body)} for i in ids]
            ).scalars().all()
            conn.execute(_POINT_TO_PAYLOAD, [{"delivery_id": i, "pid": p} for i, p in zip(ids, payload_ids)])
        return new

    if engine.dialect.name == "sqlite":
        return _sqlite_write_with_fast_retry(engine, write)
    with engine.begin() as conn:
        return write(conn)


def _sqlite_write_with_fast_retry(engine: Engine, write, timeout: float = 30.0):
    """Run `write(conn)` in one transaction under SQLite's single write lock, retrying while another
    process holds it (app.deliveries.stores.sqlite.retry_while_busy)."""

    def attempt():
        with lock_busy_when_locked(), conn.begin():
            return write(conn)

    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA busy_timeout=0")
        conn.commit()
        try:
            return retry_while_busy(attempt, timeout)
        finally:
            conn.rollback()
            conn.exec_driver_sql("PRAGMA busy_timeout=30000")
            conn.commit()


class SQLDeliveryStore:
    """Writes deliveries through a SQLAlchemy engine (PostgreSQL, or SQLite in memory)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert(self, deliveries: Sequence[NewDelivery]) -> set[str]:
        return record_batch(self.engine, deliveries)

    def mark_not_enqueued(self, ids: Sequence[str]) -> None:
        mark_not_enqueued(self.engine, ids)

    def close(self) -> None:
        pass


def mark_not_enqueued(engine: Engine, ids: Sequence[str]) -> None:
    with engine.begin() as conn:
        conn.execute(update(Delivery).where(Delivery.id.in_(list(ids))).values(enqueued_at=None))


def mark_enqueued(engine: Engine, ids: Sequence[str]) -> None:
    with engine.begin() as conn:
        conn.execute(update(Delivery).where(Delivery.id.in_(list(ids))).values(enqueued_at=utcnow()))


def _autocommit(engine: Engine):
    # One statement, its own transaction: on SQLite the write lock is taken and released inside that
    # one C call, never held across a Python-level step where this worker thread could wait for the
    # GIL while a web process waits for the lock.
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


# Plain SQL, built once: the worker runs these for every message, and the ORM's statement building
# was most of its bookkeeping CPU.
_FINISH = text(
    "UPDATE deliveries SET status = :status, error = :error, processed_at = :now, attempts = attempts + 1"
    " WHERE id IN :ids"
).bindparams(bindparam("now", type_=Delivery.__table__.c.processed_at.type), bindparam("ids", expanding=True))
_WAITING = (
    "SELECT d.id, d.event, d.action, d.installation_id, p.payload_lz4 FROM deliveries d"
    " JOIN delivery_payloads p ON p.id = d.payload_id WHERE d.id IN :ids AND {status} = :received"
)
# Without statistics, SQLite's planner prefers the status index over five or more primary keys, and
# during a burst that index holds tens of thousands of received rows, all of which it then visits.
# A unary + keeps SQLite on the primary key (PostgreSQL plans by its statistics, and has no unary +
# for text).
_WAITING_BY_DIALECT = {
    dialect: text(_WAITING.format(status=status)).bindparams(bindparam("ids", expanding=True))
    for dialect, status in (("sqlite", "+d.status"), ("postgresql", "d.status"))
}


def waiting(engine: Engine, delivery_ids: Sequence[str]) -> list[Row]:
    """Those of these deliveries still waiting to be processed: id, event, action, installation_id and
    payload_lz4 (app.deliveries.records.unpack gives the body), in the order asked (unknown and finished ones left out).

    A read, not a claim: on SQLite a write takes the lock ingress commits under, so workers write only
    their outcomes, in batches (`finish`). A second copy of a message finds nothing once the first finished.
    """
    if not delivery_ids:
        return []
    with engine.connect() as conn:
        query = _WAITING_BY_DIALECT[engine.dialect.name]
        rows = conn.execute(query, {"ids": list(delivery_ids), "received": RECEIVED}).fetchall()
    by_id = {row.id: row for row in rows}
    return [by_id[i] for i in dict.fromkeys(delivery_ids) if i in by_id]


def finish(engine: Engine, outcomes: Sequence[tuple[str, str, str | None]]) -> None:
    """Store (delivery id, status, error) outcomes and count the attempt: one statement per status and
    error, so a batch of deliveries that all went the same way is one short write."""
    groups: dict[tuple[str, str | None], list[str]] = {}
    for delivery_id, status, error in outcomes:
        groups.setdefault((status, error), []).append(delivery_id)
    if not groups:
        return
    now = utcnow()
    with _autocommit(engine) as conn:
        for (status, error), ids in groups.items():
            conn.execute(_FINISH, {"status": status, "error": error, "now": now, "ids": ids})


def unprocessed(engine: Engine, *, now: datetime, stale_after: timedelta | None, grace: timedelta,
                limit: int = 500) -> list[str]:
    """Deliveries never enqueued (older than `grace`) or enqueued longer ago than `stale_after`
    (None: only those never enqueued)."""
    never_enqueued = Delivery.enqueued_at.is_(None) & (Delivery.received_at < now - grace)
    stmt = (
        select(Delivery.id)
        .where(
            Delivery.status == RECEIVED,
            never_enqueued if stale_after is None else or_(never_enqueued, Delivery.enqueued_at < now - stale_after),
        )
        .order_by(Delivery.received_at)
        .limit(limit)
    )
    with engine.connect() as conn:
        return list(conn.execute(stmt).scalars())


def held(engine: Engine, delivery_ids: Sequence[str]) -> set[str]:
    """Those of these delivery ids the log holds, whatever their status."""
    if not delivery_ids:
        return set()
    found: set[str] = set()
    ids = list(dict.fromkeys(delivery_ids))
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):  # well under every database's bound-parameter limit
            found.update(conn.execute(select(Delivery.id).where(Delivery.id.in_(ids[start:start + 500]))).scalars())
    return found


def counts_since(engine: Engine, since: datetime) -> list[tuple[str, str, str, int]]:
    stmt = (
        select(Delivery.event, Delivery.action, Delivery.status, func.count())
        .where(Delivery.received_at >= since)
        .group_by(Delivery.event, Delivery.action, Delivery.status)
    )
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(stmt)]
