"""What the dashboard shows of a task (pure): its checklist in words, a diff per file, the usage chart's bars."""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

import pytest

from app.web.dashboard.present import ChecklistItem, checklist, split_diff, usage_chart


def _task(status: str, **fields):
    return SimpleNamespace(status=status, mode="run", pr_number=7, **fields)


def _run(**fields):
    defaults = dict(stage=None, started_at=None, agent_seconds=None, tests_passed=None)
    return SimpleNamespace(**{**defaults, **fields})


@pytest.mark.parametrize(("task", "run", "expected"), [
    (_task("running"), _run(stage="agent"), [
        ChecklistItem(True, "Queued"), ChecklistItem(True, "Setting up workspace"),
        ChecklistItem(False, "Agent working", "in progress")]),
    (_task("cancelled"), _run(stage="agent"), [
        ChecklistItem(True, "Queued"), ChecklistItem(True, "Setting up workspace"),
        ChecklistItem(False, "Agent working", "stopped here")]),
    (_task("failed"), _run(stage="pull_request", started_at=1, agent_seconds=3.0, tests_passed=False), [
        ChecklistItem(True, "Queued"), ChecklistItem(True, "Setting up workspace"), ChecklistItem(True, "Agent working"),
        ChecklistItem(False, "Committing changes", "stopped here"), ChecklistItem(False, "Running tests", "failed")]),
])
def test_the_checklist_says_in_words_what_the_comment_says_with_icons(task, run, expected):
    items = checklist(task, run)
    assert items[:len(expected)] == expected
    assert all(not any(icon in item.text for icon in "⏳❌🚫⏱") for item in items)


def test_a_diff_is_split_per_file_with_its_added_and_removed_lines():
    diff = ("diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-old\n+new\n"
            "diff --git a/src/app.py b/src/app.py\nnew file mode 100644\n--- /dev/null\n+++ b/src/app.py\n"
            "@@ -0,0 +1,2 @@\n+a\n+b\n")
    files = split_diff(diff)
    assert [(f.path, f.added, f.removed) for f in files] == [("README.md", 1, 1), ("src/app.py", 2, 0)]
    assert files[1].text.startswith("diff --git a/src/app.py")
    assert split_diff("") == []


def test_the_usage_chart_has_one_bar_a_day_titled_with_its_counts():
    today = date(2026, 12, 1)
    days = [(today - timedelta(days=29 - i), 0, 0) for i in range(29)] + [(today, 4, 3)]
    svg = usage_chart(days)
    assert svg.count('class="bar ok"') == 30 and "2026-12-01: 4 tasks, 3 succeeded" in svg
    assert ">12-01</text>" in svg and 'role="img"' in svg
