"""The task service: the only code that writes task and run state, always through the state machine."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.db import session_scope
from app.models import Run, RunTurn, Task, utcnow
from app.tasks import fair_queue
from app.tasks.fair_queue import QueuedRun
from app.tasks.states import ACTIVE, IllegalTransition, Stage, Status, is_terminal, transition

_ACTIVE_VALUES = [s.value for s in ACTIVE]


@dataclass(frozen=True)
class Started:
    task: Task
    run: Run


@dataclass(frozen=True)
class RunQueue:
    queued: list[QueuedRun]  # those that may start now, oldest first
    running: Counter[int]  # installation id -> tasks running
    last_started: dict[int, datetime]  # installation id -> when it last had a run started


class TaskService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- reading ---------------------------------------------------------------------------------
    def get(self, task_id: int) -> Task | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(Task, task_id)

    def get_run(self, run_id: int) -> Run | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(Run, run_id)

    def latest_run(self, task_id: int) -> Run | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.exec(
                select(Run).where(Run.task_id == task_id).order_by(Run.attempt.desc())  # type: ignore[attr-defined]
            ).first()

    def active_task_for(self, repo_full_name: str, number: int) -> Task | None:
        """The queued or running task on an issue or PR, if any (at most one is allowed)."""
        with Session(self.engine, expire_on_commit=False) as session:
            return session.exec(
                select(Task)
                .where(Task.repo_full_name == repo_full_name, Task.issue_number == number)
                .where(Task.status.in_(_ACTIVE_VALUES))  # type: ignore[attr-defined]
                .order_by(Task.id)  # type: ignore[arg-type]
            ).first()

    def latest_task_for(self, repo_full_name: str, number: int) -> Task | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.exec(
                select(Task)
                .where(Task.repo_full_name == repo_full_name, Task.issue_number == number)
                .order_by(Task.id.desc())  # type: ignore[union-attr]
            ).first()

    def task_for_pr(self, repo_full_name: str, pr_number: int) -> Task | None:
        """The newest task whose pull request is `pr_number` (follow-up runs land on its branch)."""
        with Session(self.engine, expire_on_commit=False) as session:
            return session.exec(
                select(Task)
                .where(Task.repo_full_name == repo_full_name, Task.pr_number == pr_number)
                .order_by(Task.id.desc())  # type: ignore[union-attr]
            ).first()

    def opening_task_for_pr(self, repo_full_name: str, pr_number: int) -> Task | None:
        """The task Draftsmith opened `pr_number` for (asked on an issue); None for a person's PR."""
        with Session(self.engine, expire_on_commit=False) as session:
            return session.exec(
                select(Task)
                .where(Task.repo_full_name == repo_full_name, Task.pr_number == pr_number)
                .where(Task.issue_number != pr_number)
                .order_by(Task.id)  # type: ignore[arg-type]
            ).first()

    def ci_fix_streak(self, repo_full_name: str, pr_number: int) -> int:
        """How many of the PR's newest tasks in a row were CI fixes: a person's request starts over."""
        with Session(self.engine, expire_on_commit=False) as session:
            triggers = session.exec(
                select(Task.trigger)
                .where(Task.repo_full_name == repo_full_name, Task.pr_number == pr_number)
                .order_by(Task.id.desc())  # type: ignore[union-attr]
                .limit(50)
            ).all()
        streak = 0
        for trigger in triggers:
            if trigger != "ci":
                break
            streak += 1
        return streak

    def task_for_delivery(self, delivery_id: str | None) -> Task | None:
        """The task a delivery already created (its handler is running again after a failure)."""
        if not delivery_id:
            return None
        with Session(self.engine, expire_on_commit=False) as session:
            return session.exec(select(Task).where(Task.delivery_id == delivery_id)).first()

    def task_for_check_run(self, check_run_id: int) -> Task | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.exec(select(Task).where(Task.check_run_id == check_run_id)).first()

    def count_since(self, installation_id: int, since: datetime) -> int:
        with Session(self.engine) as session:
            return session.exec(
                select(func.count()).select_from(Task)
                .where(Task.installation_id == installation_id, Task.created_at >= since)
            ).one()

    def cost_since(self, installation_id: int, since: datetime) -> float:
        with Session(self.engine) as session:
            total = session.exec(
                select(func.coalesce(func.sum(Run.cost_usd), 0.0))
                .select_from(Run).join(Task, Task.id == Run.task_id)
                .where(Task.installation_id == installation_id, Run.queued_at >= since)
            ).one()
            return float(total or 0.0)

    # -- the run queue ---------------------------------------------------------------------------
    def run_queue(self, including: int | None = None) -> RunQueue:
        """The queued runs that may start now, and per installation its running tasks and last start.

        One run per issue or PR at a time: a run queued behind another task on the same one
        (`on_busy: queue`) is left out until that task ends. Held runs (but `including`) are left out too,
        while keeping their issue's place: the task behind one must not start first.
        """
        with Session(self.engine) as session:
            running_rows = session.exec(
                select(Task.installation_id, Task.repo_full_name, Task.issue_number)
                .where(Task.status == Status.RUNNING.value)
            ).all()
            queued_rows = session.exec(
                select(Run.id, Run.held, Task.installation_id, Task.repo_full_name, Task.issue_number)
                .join(Task, Task.id == Run.task_id)
                .where(Run.status == Status.QUEUED.value, Task.status == Status.QUEUED.value)
                .order_by(Run.id)  # type: ignore[arg-type]
            ).all()
            turns = session.exec(select(RunTurn)).all()
        taken = {(repo, number) for _, repo, number in running_rows}
        queued = []
        for run_id, held, installation_id, repo, number in queued_rows:
            if (repo, number) in taken:
                continue
            taken.add((repo, number))
            if not held or run_id == including:
                queued.append(QueuedRun(run_id, installation_id))
        return RunQueue(queued, Counter(installation_id for installation_id, _, _ in running_rows),
                        {turn.installation_id: turn.last_started_at for turn in turns})

    def release_run(self, run_id: int) -> None:
        """Let a run slot take this queued run: its intake has acknowledged it (and opened its draft)."""
        with session_scope(self.engine) as session:
            session.execute(update(Run).where(Run.id == run_id).values(held=False))

    def release_abandoned_runs(self, older_than: timedelta) -> int:
        """Release queued runs held longer than `older_than`: the intake setting them up died or gave up.
        Returns how many."""
        cutoff = utcnow() - older_than
        with session_scope(self.engine) as session:
            return session.execute(
                update(Run).where(Run.held.is_(True), Run.status == Status.QUEUED.value,
                                  Run.queued_at < cutoff).values(held=False)
            ).rowcount or 0

    def runs_ahead(self, run_id: int) -> int | None:
        """How many queued runs start before this one as things stand (app.tasks.fair_queue)."""
        queue = self.run_queue(including=run_id)
        return fair_queue.runs_ahead(run_id, queue.queued, queue.running, queue.last_started)

    def claim_next_run(self, worker: str, max_running_per_installation: int | None) -> Started | None:
        """Start the run a free slot should take next, fairly across installations; None if none may start.

        Two slots choosing at once may pick the same run: start_run lets one have it and the other picks again.
        """
        for _ in range(5):
            queue = self.run_queue()
            chosen = fair_queue.next_run(queue.queued, queue.running, max_running_per_installation,
                                         queue.last_started)
            if chosen is None:
                return None
            if (started := self.start_run(chosen.run_id, worker)) is not None:
                self._took_turn(chosen.installation_id, started.run.started_at)
                return started
        return None

    def _took_turn(self, installation_id: int, at: datetime) -> None:
        try:
            with session_scope(self.engine) as session:
                turn = session.get(RunTurn, installation_id) or RunTurn(installation_id=installation_id)
                turn.last_started_at = at
                session.add(turn)
        except IntegrityError:  # another slot recorded this installation's first turn at the same moment
            pass

    # -- writing ---------------------------------------------------------------------------------
    def create(self, **fields) -> Started:
        """A new task in `queued` with its first run, held until release_run (its intake sets it up first)."""
        with session_scope(self.engine) as session:
            task = Task(status=Status.QUEUED.value, **fields)
            session.add(task)
            session.flush()
            run = Run(task_id=task.id, attempt=1, status=Status.QUEUED.value, held=True)
            session.add(run)
            session.flush()
            return Started(task=task, run=run)

    def update(self, task_id: int, **fields) -> Task:
        """Change a task's bookkeeping (branch, PR number, comment ids); never its status."""
        if "status" in fields:
            raise ValueError("status changes go through start/finish/cancel/retry")
        with session_scope(self.engine) as session:
            task = session.get(Task, task_id)
            if task is None:
                raise LookupError(f"task {task_id} not found")
            for key, value in fields.items():
                setattr(task, key, value)
            task.updated_at = utcnow()
            session.add(task)
            return task

    def update_run(self, run_id: int, **fields) -> Run:
        if "status" in fields:
            raise ValueError("status changes go through start/finish/cancel/retry")
        with session_scope(self.engine) as session:
            run = session.get(Run, run_id)
            if run is None:
                raise LookupError(f"run {run_id} not found")
            for key, value in fields.items():
                setattr(run, key, value)
            session.add(run)
            return run

    def start_run(self, run_id: int, worker: str) -> Started | None:
        """Move a queued run and its task to running; None if it was already taken or finished.

        Conditional UPDATEs make this safe when two run slots pick the same run at once: on SQLite a
        SELECT takes no lock (the driver begins the transaction only at the first write), so checking a
        row read first would let both start it; each UPDATE here re-checks the status under the write lock.
        """
        with session_scope(self.engine) as session:
            run = session.get(Run, run_id)
            if run is None or run.status != Status.QUEUED.value:
                return None
            now = utcnow()
            claimed = session.execute(
                update(Run).where(Run.id == run_id, Run.status == Status.QUEUED.value)
                .values(status=Status.RUNNING.value, started_at=now, heartbeat_at=now, worker=worker)
            ).rowcount
            if claimed != 1:
                return None
            moved = session.execute(
                update(Task).where(Task.id == run.task_id, Task.status == Status.QUEUED.value)
                .values(status=Status.RUNNING.value, status_reason=None, updated_at=now)
            ).rowcount
            if moved != 1:  # the task ended (cancelled) while its run waited: leave both as they are
                session.rollback()
                return None
            session.expire_all()
            return Started(task=session.get(Task, run.task_id), run=session.get(Run, run_id))

    def heartbeat(self, run_id: int) -> bool:
        """Record that the run is alive; returns whether a cancel was asked for."""
        with session_scope(self.engine) as session:
            run = session.get(Run, run_id)
            if run is None:
                return True
            run.heartbeat_at = utcnow()
            session.add(run)
            return run.cancel_requested

    def runner_called(self, run_id: int) -> None:
        """An Actions runner reported for the run: it is alive, and it has started."""
        with session_scope(self.engine) as session:
            run = session.get(Run, run_id)
            if run is None:
                return
            run.heartbeat_at = utcnow()
            run.runner_seen_at = run.runner_seen_at or run.heartbeat_at
            session.add(run)

    def reach_stage(self, run_id: int, stage: Stage) -> Run | None:
        """Record the stage a queued or running run reached; None (and nothing written) once it has ended,
        so a late report cannot move a finished run."""
        with session_scope(self.engine) as session:
            run = session.get(Run, run_id)
            if run is None or is_terminal(run.status):
                return None
            run.stage = Stage(stage).value
            session.add(run)
            return run

    def finish(
        self, run_id: int, status: Status, *, reason: str | None = None, **run_fields
    ) -> Started | None:
        """Record a run's end and its task's final state. None if the run had already ended."""
        with session_scope(self.engine) as session:
            run = session.exec(select(Run).where(Run.id == run_id).with_for_update()).first()
            if run is None or is_terminal(run.status):
                return None
            task = session.exec(select(Task).where(Task.id == run.task_id).with_for_update()).one()
            now = utcnow()
            run.status = transition(run.status, status).value
            run.ended_at = now
            if reason and status is not Status.SUCCEEDED:
                run.error = reason
            for key, value in run_fields.items():
                setattr(run, key, value)
            if task.status in _ACTIVE_VALUES:
                task.status = transition(task.status, status).value
            task.status_reason = reason
            task.finished_at = now
            task.updated_at = now
            session.add(run)
            session.add(task)
            return Started(task=task, run=run)

    def mark_reported(self, run_id: int) -> None:
        """The run's end is written back to GitHub."""
        with session_scope(self.engine) as session:
            run = session.get(Run, run_id)
            if run is not None and run.reported_at is None:
                run.reported_at = utcnow()
                session.add(run)

    def unreported_ends(self, older_than: timedelta) -> list[Started]:
        """Ended tasks whose last run ended longer than `older_than` ago without its end written back (the
        worker died between the two). Only the task's latest run: an earlier attempt re-queued is not."""
        cutoff = utcnow() - older_than
        with Session(self.engine, expire_on_commit=False) as session:
            rows = session.exec(
                select(Task, Run).join(Run, Run.task_id == Task.id)
                .where(Run.reported_at.is_(None), Run.ended_at.is_not(None), Run.ended_at < cutoff)  # type: ignore[union-attr]
                .where(Task.status.not_in(_ACTIVE_VALUES))  # type: ignore[attr-defined]
            ).all()
            latest = {}
            for task, run in rows:
                newest = session.exec(select(func.max(Run.attempt)).where(Run.task_id == task.id)).one()
                if run.attempt == newest:
                    latest[task.id] = Started(task=task, run=run)
            return list(latest.values())

    def request_cancel(self, task_id: int, reason: str = "cancelled") -> Started | None:
        """Cancel a task: a queued run ends at once; a running one is flagged for its worker to stop.

        Returns the task and run if anything changed.
        """
        with session_scope(self.engine) as session:
            task = session.exec(select(Task).where(Task.id == task_id).with_for_update()).first()
            if task is None or task.status not in _ACTIVE_VALUES:
                return None
            run = session.exec(
                select(Run).where(Run.task_id == task_id).order_by(Run.attempt.desc())  # type: ignore[attr-defined]
            ).first()
            now = utcnow()
            if task.status == Status.QUEUED.value:
                task.status = transition(task.status, Status.CANCELLED).value
                task.status_reason = reason
                task.finished_at = now
                if run is not None and run.status == Status.QUEUED.value:
                    run.status = transition(run.status, Status.CANCELLED).value
                    run.ended_at = now
                    run.error = reason
            elif run is not None:
                run.cancel_requested = True
                task.status_reason = reason
            task.updated_at = now
            session.add(task)
            if run is not None:
                session.add(run)
            return Started(task=task, run=run)  # type: ignore[arg-type]

    def retry(self, task_id: int, *, instruction: str | None = None) -> Started:
        """Start a finished task over with a new run attempt, held until release_run."""
        with session_scope(self.engine) as session:
            task = session.exec(select(Task).where(Task.id == task_id).with_for_update()).one()
            if not is_terminal(task.status):
                raise IllegalTransition(Status(task.status), Status.QUEUED)
            task.status = transition(task.status, Status.QUEUED).value
            task.status_reason = None
            task.finished_at = None
            task.updated_at = utcnow()
            if instruction is not None:
                task.instruction = instruction
            attempts = session.exec(select(func.max(Run.attempt)).where(Run.task_id == task_id)).one() or 0
            run = Run(task_id=task_id, attempt=attempts + 1, status=Status.QUEUED.value, held=True)
            session.add(task)
            session.add(run)
            session.flush()
            return Started(task=task, run=run)

    def dead_runs(self, older_than: timedelta) -> list[Run]:
        """Running runs whose heartbeat stopped: their worker died."""
        cutoff = utcnow() - older_than
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(
                select(Run).where(Run.status == Status.RUNNING.value, Run.heartbeat_at < cutoff)
            ).all())

    def stranded_queued_runs(self, older_than: timedelta) -> list[Run]:
        """Queued runs that never started (their message was lost, e.g. Redis was down when enqueued).

        A run queued behind another task on the same issue (`on_busy: queue`) is left out: it is waiting
        on purpose, and starts when that task ends.
        """
        cutoff = utcnow() - older_than
        may_start = {run.run_id for run in self.run_queue().queued}
        with Session(self.engine, expire_on_commit=False) as session:
            candidates = session.exec(
                select(Run).where(Run.status == Status.QUEUED.value, Run.queued_at < cutoff)
            ).all()
        return [run for run in candidates if run.id in may_start]
