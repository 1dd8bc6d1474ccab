"""Every write Draftsmith makes to GitHub is made by a module under app/github/ (report.py and its helpers)."""

from __future__ import annotations

import re
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"
# githubkit's REST methods that only read; any other name (create_, update_, delete_, add_, ...) writes.
_READS = re.compile(r"(async_)?(get|list|check|compare)(_\w*)?")
_REST_CALL = re.compile(r"\.rest\.\w+\.(\w+)\(")
_RAW_WRITE = re.compile(r"""\b(a?request)\(\s*["'](POST|PUT|PATCH|DELETE)["']""")
_MUTATION = re.compile(r"\bmutation\b\s*[{(A-Za-z]")


def writes_in(text: str) -> list[str]:
    found = [m.group(0) for m in _RAW_WRITE.finditer(text)]
    found += [m.group(1) for m in _REST_CALL.finditer(text) if not _READS.fullmatch(m.group(1))]
    found += [m.group(0) for m in _MUTATION.finditer(text)]
    return found


def test_the_scan_sees_each_kind_of_write():
    assert writes_in('await gh.arequest("POST", "/repos/o/r/dispatches")') == ['arequest("POST"']
    assert writes_in("await gh.rest.issues.async_create_comment(o, r, 1)") == ["async_create_comment"]
    assert writes_in("await gh.rest.issues.async_list_comments(o, r, 1)") == []
    assert writes_in('gh.graphql("mutation { markPullRequestReadyForReview }")') != []


def test_no_module_outside_app_github_writes_to_github():
    offenders = {}
    for path in APP.rglob("*.py"):
        relative = path.relative_to(APP)
        if relative.parts[0] in ("github", "fakehub"):  # the one writer, and the fake GitHub itself
            continue
        if found := writes_in(path.read_text()):
            offenders[str(relative)] = found
    assert offenders == {}
