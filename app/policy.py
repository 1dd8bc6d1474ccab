"""Who may ask (pure): sender checks, repository permission levels and per-installation limits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

PERMISSION_ORDER: tuple[str, ...] = ("none", "read", "triage", "write", "maintain", "admin")
# Older names GitHub still uses in `permissions` objects and team APIs.
_ALIASES = {"pull": "read", "push": "write"}


@dataclass(frozen=True)
class Decision:
    """Whether a sender may trigger anything; `reply` is False when we must stay silent (bots)."""

    allowed: bool
    reason: str = ""
    reply: bool = False


def _bot_name(login: str) -> str:
    return login.lower().removesuffix("[bot]")


def decide_sender(
    sender_login: str, sender_type: str | None, bot_login: str, allowed_bots: list[str] | tuple[str, ...] = ()
) -> Decision:
    """Bots never trigger tasks (no loops), unless listed in `allowed_bots`; our own bot never does.

    Refusals are silent: answering a bot would invite the bot to answer back.
    `allowed_bots` entries match with or without the `[bot]` suffix, case-insensitively.
    """
    login = sender_login or ""
    if _bot_name(login) == _bot_name(bot_login or ""):
        # Even when listed: our own comments carry command hints and must never start work.
        return Decision(False, "the sender is Draftsmith itself")
    is_bot = (sender_type or "").lower() == "bot" or login.lower().endswith("[bot]")
    if is_bot:
        if _bot_name(login) in {_bot_name(name) for name in allowed_bots}:
            return Decision(True, "the sender is a bot listed in allowed_bots")
        return Decision(False, "the sender is a bot not listed in allowed_bots")
    return Decision(True)


def permission_level(permission: str | None, role_name: str | None = None) -> str:
    """The finest known level from GitHub's collaborator-permission answer.

    `GET /repos/{o}/{r}/collaborators/{u}/permission` answers `permission` in admin/write/read/none only
    (maintain shows as write, triage as read) and the real role in `role_name`, which can also be a
    custom role's name: then the base `permission` is what counts.
    """
    levels = [_normalise(permission), _normalise(role_name)]
    return max(levels, key=PERMISSION_ORDER.index)


def permission_from_response(data: dict[str, Any]) -> str:
    """`permission_level` for the JSON body of the collaborator-permission endpoint."""
    user = data.get("user") or {}
    return permission_level(data.get("permission"), data.get("role_name") or user.get("role_name"))


def _normalise(level: str | None) -> str:
    level = (level or "none").strip().lower()
    level = _ALIASES.get(level, level)
    return level if level in PERMISSION_ORDER else "none"


def has_permission(actual: str | None, required: str) -> bool:
    """True when `actual` (a level, or a role name GitHub reports) is at least `required`.

    Unknown actual values count as no permission; an unknown requirement is a programming error.
    """
    required_level = _ALIASES.get(required.lower(), required.lower())
    if required_level not in PERMISSION_ORDER:
        raise ValueError(f"unknown permission level {required!r}")
    return PERMISSION_ORDER.index(_normalise(actual)) >= PERMISSION_ORDER.index(required_level)


# --- limits ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Per-installation budgets a new task is refused over; None means unlimited. (How many tasks an
    installation runs at once is not refused but queued: app.tasks.fair_queue.)"""

    max_per_day: int | None = None
    daily_cost_cap_usd: float | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(max_per_day=settings.max_tasks_per_day, daily_cost_cap_usd=settings.daily_cost_cap_usd)


LimitKind = Literal["daily", "cost"]


@dataclass(frozen=True)
class LimitExceeded:
    """Which budget a new task would break, and when it resets."""

    kind: LimitKind
    limit: float
    current: float
    resets_at: datetime


def next_utc_midnight(now: datetime) -> datetime:
    now = _as_utc(now)
    return (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def _as_utc(moment: datetime) -> datetime:
    # The database keeps naive UTC timestamps (app.models.utcnow).
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check_limits(today_count: int, cost_today: float | None, limits: Limits, now: datetime) -> LimitExceeded | None:
    """The first daily budget that one more task would break, or None.

    `today_count` is the installation's tasks before this one; the budgets reset at the next midnight UTC.
    """
    if limits.max_per_day is not None and today_count >= limits.max_per_day:
        return LimitExceeded("daily", limits.max_per_day, today_count, next_utc_midnight(now))
    if limits.daily_cost_cap_usd is not None and (cost_today or 0.0) >= limits.daily_cost_cap_usd:
        return LimitExceeded("cost", limits.daily_cost_cap_usd, cost_today or 0.0, next_utc_midnight(now))
    return None
