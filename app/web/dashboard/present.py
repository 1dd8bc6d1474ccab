"""How the dashboard shows things (pure): the checklist, diffs per file, durations, costs and the usage chart."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import date

from app.github import render

_ITEM = re.compile(r"^- \[( |x)\] (.*)$")
_ICONS = re.compile("[\u23f3\u274c\U0001f6ab\u23f1\ufe0f]")


@dataclass(frozen=True)
class ChecklistItem:
    done: bool
    text: str
    note: str = ""  # "in progress", "stopped here" or "failed": the comment says these with icons


def checklist(task, run) -> list[ChecklistItem]:
    """The progress comment's checklist (app.github.render.checklist), as items instead of Markdown."""
    items = []
    for line in render.checklist(task, run).splitlines():
        found = _ITEM.match(line.strip())
        if not found:
            continue
        text = found.group(2)
        note = ""
        if text.endswith(": failed ❌"):
            text, note = text.removesuffix(": failed ❌"), "failed"
        elif "**" in text:
            note = "in progress" if "⏳" in text else "stopped here"
        text = _ICONS.sub("", text.replace("**", "").replace("~~", "")).strip()
        items.append(ChecklistItem(found.group(1) == "x", text, note))
    return items


@dataclass(frozen=True)
class FileDiff:
    path: str
    added: int
    removed: int
    text: str


def split_diff(diff: str) -> list[FileDiff]:
    """A `git diff` as one part per file."""
    files: list[FileDiff] = []
    parts = re.split(r"(?m)^(?=diff --git )", diff or "")
    for part in parts:
        if not part.strip():
            continue
        header = part.splitlines()[0]
        found = re.match(r"diff --git a/(.*?) b/(.*)$", header)
        path = found.group(2) if found else header
        lines = part.splitlines()
        added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++"))
        removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("---"))
        files.append(FileDiff(path, added, removed, part))
    return files


def diff_line_class(line: str) -> str:
    if line.startswith(("+++", "---", "diff --git", "index ")):
        return "meta"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    if line.startswith("@@"):
        return "hunk"
    return ""


def seconds(value: float | None) -> str:
    return "–" if value is None else render.duration(value)


def cost(value: float | None) -> str:
    return "–" if value is None else f"${value:.2f}"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def status_label(status: str) -> str:
    return status.replace("_", " ")


def usage_chart(days: list[tuple[date, int, int]], *, width: int = 720, height: int = 180) -> str:
    """Tasks per day as an SVG bar chart: each bar the day's tasks, its darker part those that succeeded."""
    top = max((count for _, count, _ in days), default=0) or 1
    left, bottom, plot_h = 32, 22, height - 34
    bar_w = (width - left) / max(1, len(days))
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-title" '
             f'preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg">',
             f'<title id="chart-title">Tasks per day over the last {len(days)} days</title>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" class="axis"/>',
             f'<text x="{left - 6}" y="{height - bottom - plot_h + 4}" class="label" text-anchor="end">{top}</text>',
             f'<text x="{left - 6}" y="{height - bottom}" class="label" text-anchor="end">0</text>']
    for index, (day, count, succeeded) in enumerate(days):
        x = left + index * bar_w + 1
        h_all = plot_h * count / top
        h_ok = plot_h * succeeded / top
        label = html.escape(f"{day:%Y-%m-%d}: {count} task{'s' if count != 1 else ''}, {succeeded} succeeded")
        parts.append(f'<g><title>{label}</title>'
                     f'<rect x="{x:.1f}" y="{height - bottom - h_all:.1f}" width="{max(1.0, bar_w - 2):.1f}" '
                     f'height="{h_all:.1f}" class="bar"/>'
                     f'<rect x="{x:.1f}" y="{height - bottom - h_ok:.1f}" width="{max(1.0, bar_w - 2):.1f}" '
                     f'height="{h_ok:.1f}" class="bar ok"/></g>')
        if (len(days) - 1 - index) % 7 == 0:  # weekly, counted back from today so the last bar has one
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - 6}" class="label" text-anchor="middle">'
                         f"{day:%m-%d}</text>")
    parts.append("</svg>")
    return "".join(parts)
