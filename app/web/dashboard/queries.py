"""The dashboard's database reads: tasks in the repositories a person reaches, a task's runs and diffs, usage."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import and_, false, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.models import Artifact, AuditEntry, Run, Task, utcnow

PAGE_SIZE = 50
USAGE_DAYS = 30


@dataclass(frozen=True)
class Filters:
    repo: str | None = None
    status: str | None = None
    agent: str | None = None
    requester: str | None = None
    page: int = 1


@dataclass(frozen=True)
class TaskRow:
    task: Task
    runs: int
    seconds: float | None
    cost_usd: float | None


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def run_seconds(run: Run, now: datetime | None = None) -> float | None:
    """How long a run has taken so far (a running one up to `now`)."""
    started = _utc(run.started_at)
    if started is None:
        return None
    ended = _utc(run.ended_at) or (now or datetime.now(UTC))
    return max(0.0, (ended - started).total_seconds())


def _in_scope(scopes: list[tuple[int, str]]):
    """Only tasks of these (installation id, repository) pairs: one installation's repository name never
    shows another installation's tasks."""
    by_installation: dict[int, list[str]] = defaultdict(list)
    for installation_id, full_name in scopes:
        by_installation[installation_id].append(full_name)
    if not by_installation:
        return false()
    return or_(*(and_(Task.installation_id == i, Task.repo_full_name.in_(names))  # type: ignore[attr-defined]
                 for i, names in by_installation.items()))


def list_tasks(engine: Engine, scopes: list[tuple[int, str]], filters: Filters) -> tuple[list[TaskRow], bool]:
    """One page of tasks, newest first, and whether there is a next page."""
    query = select(Task).where(_in_scope(scopes))
    if filters.repo:
        query = query.where(Task.repo_full_name == filters.repo)
    if filters.status:
        query = query.where(Task.status == filters.status)
    if filters.agent:
        query = query.where(Task.agent == filters.agent)
    if filters.requester:
        query = query.where(Task.requester == filters.requester.lstrip("@"))
    page = max(1, filters.page)
    query = query.order_by(Task.id.desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)  # type: ignore[union-attr]
    with Session(engine, expire_on_commit=False) as session:
        tasks = list(session.exec(query).all())
        more = len(tasks) > PAGE_SIZE
        tasks = tasks[:PAGE_SIZE]
        runs = _runs_of(session, [t.id for t in tasks])
    return [_row(task, runs.get(task.id, [])) for task in tasks], more


def _runs_of(session: Session, task_ids: list[int]) -> dict[int, list[Run]]:
    found: dict[int, list[Run]] = defaultdict(list)
    if task_ids:
        for run in session.exec(select(Run).where(Run.task_id.in_(task_ids)).order_by(Run.attempt)).all():  # type: ignore[attr-defined]
            found[run.task_id].append(run)
    return found


def _row(task: Task, runs: list[Run]) -> TaskRow:
    seconds = [s for s in (run_seconds(r) for r in runs) if s is not None]
    costs = [r.cost_usd for r in runs if r.cost_usd is not None]
    return TaskRow(task, len(runs), sum(seconds) if seconds else None, sum(costs) if costs else None)


@dataclass(frozen=True)
class TaskDetail:
    task: Task
    runs: list[Run]
    diffs: dict[int, str]  # run id -> unified diff


def task_detail(engine: Engine, task_id: int) -> TaskDetail | None:
    with Session(engine, expire_on_commit=False) as session:
        task = session.get(Task, task_id)
        if task is None:
            return None
        runs = list(session.exec(select(Run).where(Run.task_id == task_id).order_by(Run.attempt)).all())
        diffs: dict[int, str] = {}
        if runs:
            for artifact in session.exec(select(Artifact).where(
                    Artifact.run_id.in_([r.id for r in runs]), Artifact.kind == "diff").order_by(Artifact.id)).all():  # type: ignore[attr-defined]
                diffs[artifact.run_id] = artifact.content  # the newest diff of a run wins
    return TaskDetail(task, runs, diffs)


def get_task(engine: Engine, task_id: int) -> Task | None:
    with Session(engine, expire_on_commit=False) as session:
        return session.get(Task, task_id)


def latest_task_id(engine: Engine, repo_full_name: str, number: int) -> int | None:
    with Session(engine) as session:
        return session.exec(select(Task.id).where(Task.repo_full_name == repo_full_name, Task.issue_number == number)
                            .order_by(Task.id.desc())).first()  # type: ignore[union-attr]


def key_setters(engine: Engine, installation_ids: list[int]) -> dict[tuple[int, str | None, str], AuditEntry]:
    """The newest `credential.set` audit entry per (installation, repository, name): who set a key, and when."""
    found: dict[tuple[int, str | None, str], AuditEntry] = {}
    if not installation_ids:
        return found
    with Session(engine) as session:
        for entry in session.exec(select(AuditEntry).where(
                AuditEntry.action == "credential.set", AuditEntry.installation_id.in_(installation_ids))  # type: ignore[attr-defined]
                .order_by(AuditEntry.at, AuditEntry.id)).all():
            found[(entry.installation_id, (entry.repo_full_name or None), entry.subject)] = entry
    return found


# -- usage ------------------------------------------------------------------------------------------


@dataclass
class Group:
    name: str
    tasks: int = 0
    finished: int = 0
    succeeded: int = 0
    seconds: list[float] = field(default_factory=list)
    cost_usd: float = 0.0
    costed: bool = False

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.finished if self.finished else None

    @property
    def median_seconds(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None


@dataclass
class Usage:
    days: list[tuple[date, int, int]]  # (day, tasks, of which succeeded)
    total: Group
    by_repo: list[Group]
    by_agent: list[Group]


def usage(engine: Engine, scopes: list[tuple[int, str]], days: int = USAGE_DAYS, now: datetime | None = None) -> Usage:
    now = now or utcnow()
    first_day = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(first_day, datetime.min.time(), tzinfo=UTC)
    with Session(engine) as session:
        tasks = list(session.exec(select(Task).where(_in_scope(scopes), Task.created_at >= since)).all())
        runs = _runs_of(session, [t.id for t in tasks])
    per_day = {first_day + timedelta(days=i): [0, 0] for i in range(days)}
    total, repos, agents = Group("all"), {}, {}
    for task in tasks:
        day = _utc(task.created_at).date()
        if day in per_day:
            per_day[day][0] += 1
            per_day[day][1] += task.status == "succeeded"
        row = _row(task, runs.get(task.id, []))
        for group in (total, repos.setdefault(task.repo_full_name, Group(task.repo_full_name)),
                      agents.setdefault(task.agent or "(default)", Group(task.agent or "(default)"))):
            group.tasks += 1
            if task.status not in ("queued", "running"):
                group.finished += 1
                group.succeeded += task.status == "succeeded"
                if row.seconds is not None:
                    group.seconds.append(row.seconds)
            if row.cost_usd is not None:
                group.cost_usd += row.cost_usd
                group.costed = True
    by_count = lambda groups: sorted(groups.values(), key=lambda g: (-g.tasks, g.name))  # noqa: E731
    return Usage([(d, c[0], c[1]) for d, c in per_day.items()], total, by_count(repos), by_count(agents))
