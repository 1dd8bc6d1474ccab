"""The Engine protocol: what the lifecycle, the commands and the sweeper ask of wherever a run executes."""

from __future__ import annotations

from typing import Protocol

from app.models import Run, Task
from app.tasks.service import TaskService


class Engine(Protocol):
    name: str

    async def run(self, runtime, tasks: TaskService, task: Task, run: Run) -> None:
        """Carry out a run that has just been marked running: to its end, or until another system holds it."""

    async def cancel(self, runtime, gh, task: Task, run: Run) -> None:
        """A cancel was asked for `run` (its row says so); end it now if nothing of ours is watching the flag."""

    async def check_on(self, runtime, tasks: TaskService, task: Task, run: Run) -> bool:
        """`run`'s heartbeat went quiet: end it (True), or leave it running because it still lives (False)."""
