"""The task and run state machine (pure): which moves are legal, and which states are final."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    NEEDS_ATTENTION = "needs_attention"


class Stage(StrEnum):
    """How far a run got (Run.stage), so whoever ends it, even another process, can say where it stopped."""

    QUEUED = "queued"
    WORKSPACE = "workspace"
    AGENT = "agent"
    COMMIT = "commit"
    TESTS = "tests"
    PULL_REQUEST = "pull_request"
    PLAN = "plan"  # plan mode's last stage, in place of commit, tests and pull request


TERMINAL = frozenset(
    {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.TIMED_OUT, Status.NEEDS_ATTENTION}
)
ACTIVE = frozenset({Status.QUEUED, Status.RUNNING})

_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.QUEUED: frozenset({Status.RUNNING, Status.CANCELLED, Status.FAILED}),
    # RUNNING -> QUEUED is the one way back: a dead worker's run re-queued once.
    Status.RUNNING: frozenset(TERMINAL | {Status.QUEUED}),
    # A terminal task only moves again through a retry, which starts it over.
    Status.SUCCEEDED: frozenset({Status.QUEUED}),
    Status.FAILED: frozenset({Status.QUEUED}),
    Status.CANCELLED: frozenset({Status.QUEUED}),
    Status.TIMED_OUT: frozenset({Status.QUEUED}),
    Status.NEEDS_ATTENTION: frozenset({Status.QUEUED}),
}


class IllegalTransition(ValueError):
    def __init__(self, current: Status, target: Status) -> None:
        super().__init__(f"cannot move from {current.value} to {target.value}")
        self.current = current
        self.target = target


def transition(current: str | Status, target: str | Status) -> Status:
    """Return `target` if moving there from `current` is legal, else raise IllegalTransition."""
    current, target = Status(current), Status(target)
    if target not in _ALLOWED[current]:
        raise IllegalTransition(current, target)
    return target


def is_terminal(status: str | Status) -> bool:
    return Status(status) in TERMINAL
