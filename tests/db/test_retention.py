"""Retention prunes what is past its age, in batches, and keeps everything younger (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlmodel import Session

from app import retention
from app.models import Artifact, AuditEntry, Delivery, DeliveryPayload, LogLine, Run, Task, utcnow


def _scene(engine) -> None:
    now, old = utcnow(), utcnow() - timedelta(days=40)
    with Session(engine) as session:
        task = Task(installation_id=1, repo_full_name="octo/demo", issue_number=1, requester="alice",
                    trigger="assignment")
        session.add(task)
        session.flush()
        run = Run(task_id=task.id, attempt=1)
        session.add(run)
        session.flush()
        for n in range(7):  # five old lines, two new
            session.add(LogLine(run_id=run.id, seq=n, text=f"line {n}", created_at=old if n < 5 else now))
        session.add_all([Artifact(run_id=run.id, kind="diff", content="old diff", created_at=old),
                         Artifact(run_id=run.id, kind="plan", content="old plan", created_at=old),
                         Artifact(run_id=run.id, kind="transcript", content="new", created_at=now)])
        for n, (at, status) in enumerate([(old, "processed"), (old, "received"), (now, "processed")]):
            payload = DeliveryPayload(payload_lz4=b"body")
            session.add(payload)
            session.flush()
            session.add(Delivery(id=f"d{n}", event="issues", received_at=at, status=status, payload_id=payload.id))
        session.add_all([AuditEntry(actor="alice", action="task.triggered", at=utcnow() - timedelta(days=400)),
                         AuditEntry(actor="alice", action="task.triggered", at=old)])
        session.commit()


def _count(engine, model, *where) -> int:
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def test_rows_past_retention_go_in_batches_and_younger_ones_stay(engine):
    _scene(engine)

    pruned = retention.prune(engine, days=30, audit_days=365, batch=2)

    assert pruned == {"delivery_bodies": 1, "log_lines": 5, "artifacts": 1, "audit_entries": 1}
    assert _count(engine, LogLine) == 2
    assert {a for (a,) in Session(engine).execute(select(Artifact.kind)).all()} == {"plan", "transcript"}
    # The old processed delivery keeps its row (the record of what arrived) but not its body; one still
    # waiting to be processed keeps both
    with Session(engine) as session:
        rows = {d.id: d.payload_id for d in session.execute(select(Delivery)).scalars()}
    assert rows["d0"] is None and rows["d1"] is not None and rows["d2"] is not None
    assert _count(engine, DeliveryPayload) == 2
    assert _count(engine, AuditEntry) == 1
    # Nothing left to do the second time
    assert set(retention.prune(engine, days=30, audit_days=365).values()) == {0}
    oldest = retention.oldest(engine)
    assert all(at is not None for at in oldest.values())
