"""Who may ask: bots, permission levels and per-installation limits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.policy import (
    PERMISSION_ORDER,
    LimitExceeded,
    Limits,
    check_limits,
    decide_sender,
    has_permission,
    permission_from_response,
    permission_level,
)
from app.settings import Settings

BOT = "draftsmith[bot]"


@pytest.mark.parametrize(
    ("login", "kind", "allowed_bots", "allowed"),
    [
        ("octocat", "User", [], True),
        ("draftsmith[bot]", "Bot", [], False),
        ("draftsmith[bot]", "Bot", ["draftsmith"], False),  # never ourselves, even if listed
        ("Draftsmith[bot]", "Bot", ["draftsmith[bot]"], False),
        ("dependabot[bot]", "Bot", [], False),
        ("dependabot[bot]", "Bot", ["dependabot"], True),
        ("dependabot[bot]", "Bot", ["Dependabot[bot]"], True),
        ("renovate[bot]", "Bot", ["dependabot"], False),
        ("some-ci[bot]", "User", [], False),  # the login gives it away even if the type doesn't
        ("ci-robot", "Bot", [], False),
        ("ci-robot", "Bot", ["ci-robot"], True),
    ],
)
def test_bots_trigger_only_when_allowed_and_we_never_trigger_ourselves(login, kind, allowed_bots, allowed):
    decision = decide_sender(login, kind, BOT, allowed_bots)
    assert decision.allowed is allowed
    if not allowed:
        assert decision.reply is False  # a bot is never answered
        assert decision.reason


@pytest.mark.parametrize(
    ("actual", "required", "expected"),
    [
        ("admin", "write", True),
        ("maintain", "write", True),
        ("write", "write", True),
        ("triage", "write", False),
        ("read", "write", False),
        ("none", "read", False),
        ("read", "read", True),
        ("triage", "triage", True),
        ("write", "maintain", False),
        ("push", "write", True),
        ("pull", "triage", False),
        ("ADMIN", "admin", True),
        ("some-custom-role", "read", False),
        (None, "read", False),
        ("", "read", False),
    ],
)
def test_permission_levels_are_ordered(actual, required, expected):
    assert has_permission(actual, required) is expected


def test_every_level_has_at_least_itself_and_no_more():
    for index, level in enumerate(PERMISSION_ORDER):
        for other_index, other in enumerate(PERMISSION_ORDER):
            assert has_permission(level, other) is (index >= other_index)


def test_an_unknown_requirement_is_a_bug_not_a_refusal():
    with pytest.raises(ValueError):
        has_permission("admin", "owner")


@pytest.mark.parametrize(
    ("permission", "role_name", "expected"),
    [
        ("write", "maintain", "maintain"),  # GitHub reports maintain as permission=write
        ("read", "triage", "triage"),  # and triage as permission=read
        ("write", "write", "write"),
        ("write", "security-reviewer", "write"),  # a custom role falls back to its base permission
        ("admin", None, "admin"),
        ("none", None, "none"),
    ],
)
def test_the_finer_role_name_counts(permission, role_name, expected):
    assert permission_level(permission, role_name) == expected


def test_permission_from_the_collaborator_permission_response():
    body = {"permission": "write", "role_name": "maintain", "user": {"login": "octocat"}}
    assert permission_from_response(body) == "maintain"
    assert has_permission(permission_from_response({"permission": "read", "role_name": "triage"}), "triage")
    assert permission_from_response({}) == "none"


NOW = datetime(2024, 5, 1, 17, 30, tzinfo=UTC)
MIDNIGHT = datetime(2024, 5, 2, 0, 0, tzinfo=UTC)
LIMITS = Limits(max_per_day=10, daily_cost_cap_usd=5.0)


@pytest.mark.parametrize(
    ("today", "cost", "expected"),
    [
        (0, 0.0, None),
        (9, 4.99, None),
        (10, 0.0, LimitExceeded("daily", 10, 10, MIDNIGHT)),
        (1, 5.0, LimitExceeded("cost", 5.0, 5.0, MIDNIGHT)),
        (10, 9.0, LimitExceeded("daily", 10, 10, MIDNIGHT)),
        (0, None, None),
    ],
)
def test_limits(today, cost, expected):
    assert check_limits(today, cost, LIMITS, NOW) == expected


def test_no_limits_means_unlimited():
    assert check_limits(10_000, 1e9, Limits(), NOW) is None


def test_daily_limits_reset_at_the_next_utc_midnight_even_for_naive_or_other_zone_times():
    from datetime import timedelta, timezone

    naive = datetime(2024, 12, 31, 23, 59, 59)
    assert check_limits(10, 0, LIMITS, naive).resets_at == datetime(2025, 1, 1, tzinfo=UTC)
    # 01:00 on May 2nd in UTC+2 is still May 1st in UTC.
    local = datetime(2024, 5, 2, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert check_limits(10, 0, LIMITS, local).resets_at == MIDNIGHT


def test_limits_come_from_settings():
    settings = Settings(max_concurrent_tasks=3, max_tasks_per_day=7, daily_cost_cap_usd=None)
    assert Limits.from_settings(settings) == Limits(7, None)
