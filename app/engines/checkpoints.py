"""While the agent works, push what it has done so far to the draft PR: every N seconds and after its commits.

A checkpoint is best effort: one that fails is logged and the next one tries again; the run goes on.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from app.engines.git.branch_writer import BranchWriter, Pushed
from app.engines.git.changes import ChangesRefused, RebaseConflict
from app.github import render
from app.github.report import Reporter
from app.logs import get_logger
from app.tasks.service import TaskService

POLL_SECONDS = 0.5
# After an agent's own commit; a loop of commits must not turn into a push a second.
MIN_SECONDS_BETWEEN = 5.0


def interval_for(settings, config) -> float:
    """The repository's checkpoint_seconds, else the server's; 0 turns the timer off."""
    chosen = config.checkpoint_seconds if config.checkpoint_seconds is not None else settings.checkpoint_seconds
    return float(chosen)


class Checkpoints:
    """`async with Checkpoints(...)` around the agent; `take()` once more when a run stops early."""

    def __init__(self, *, writer: BranchWriter, take_snapshot: Callable[[], str], report: Reporter,
                 tasks: TaskService, task_id: int, run_id: int, interval: float,
                 commit_marker: Callable[[], object], log: Callable[[str], None]) -> None:
        self.writer = writer
        self.take_snapshot = take_snapshot
        self.report = report
        self.tasks = tasks
        self.task_id = task_id
        self.run_id = run_id
        self.interval = interval
        self.commit_marker = commit_marker
        self.log = log
        self._stop = asyncio.Event()
        self._loop_task: asyncio.Task | None = None
        self._gave_up = False

    async def __aenter__(self) -> Checkpoints:
        self._loop_task = asyncio.create_task(self._watch(), name=f"checkpoints-{self.run_id}")
        return self

    async def __aexit__(self, *exc) -> None:
        self._stop.set()
        if self._loop_task is not None:
            await self._loop_task  # a push under way finishes before the final one starts

    async def _watch(self) -> None:
        clock = asyncio.get_running_loop().time
        due = clock() + self.interval if self.interval > 0 else math.inf
        last_push = clock()
        marker = await asyncio.to_thread(self.commit_marker)
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), POLL_SECONDS)
                return
            except TimeoutError:
                pass
            now = clock()
            seen = await asyncio.to_thread(self.commit_marker)
            committed = seen != marker and now - last_push >= MIN_SECONDS_BETWEEN
            if now < due and not committed:
                continue
            marker = seen
            await self.take()
            last_push = clock()
            due = last_push + self.interval if self.interval > 0 else math.inf

    async def take(self, why: str = "") -> Pushed | None:
        """Push the workspace as it is now, if it changed since the last push."""
        if self._gave_up:
            return None
        task = self.tasks.get(self.task_id)
        url = self.report.task_url(task)
        try:
            snapshot = await asyncio.to_thread(self.take_snapshot)
            pushed = await self.writer.push(
                snapshot, lambda changes: render.checkpoint_message(task, len(changes.files), url, why=why))
            if pushed is None:
                return None
            self.log(f"checkpoint {pushed.sha[:7]} pushed to {self.writer.branch} ({len(pushed.changes.files)} files)")
            files = await asyncio.to_thread(self.writer.pr_files, task)
            await self.report.head_moved(task, self.tasks.get_run(self.run_id), pushed.sha, files=files)
            return pushed
        except ChangesRefused as exc:
            self.log(f"checkpoint skipped: {exc}")
        except RebaseConflict:
            self._gave_up = True
            self.log(f"no more checkpoints: commits on {self.writer.branch} conflict with the agent's changes")
        except Exception as exc:  # GitHub trouble: the next checkpoint, or the final push, tries again
            get_logger(run_id=self.run_id).warning("checkpoint failed", error_type=type(exc).__name__)
            self.log(f"checkpoint failed ({type(exc).__name__}); the next one tries again")
        return None
