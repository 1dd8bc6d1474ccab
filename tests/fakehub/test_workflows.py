"""repository_dispatch starts only the workflows that listen for it, titled by their run-name, as on GitHub."""

from pathlib import Path

import pytest

from app.fakehub.workflows import run_name

WORKFLOW = (Path(__file__).resolve().parents[2] / "workflows" / "draftsmith.yml").read_text()


@pytest.mark.parametrize("template,expected", [
    ("${{ format('Run {0} of {1}', github.event.client_payload.run, github.event.client_payload.task) }}",
     "Run 5 of 9"),
    ("Plain title", "Plain title"),
    ("${{ github.event.client_payload.unknown_function() }}", "fallback"),
    (None, "fallback"),
])
def test_run_names_evaluate_the_format_form(template, expected):
    assert run_name(template, {"client_payload": {"run": 5, "task": 9}}, "fallback") == expected


def _dispatch(fakehub, repo: str, event_type: str = "draftsmith-run") -> None:
    client = fakehub.as_app(repo)
    response = client.post(f"/repos/{repo}/dispatches",
                           json={"event_type": event_type, "client_payload": {"run_id": 3, "task_id": 2}})
    assert response.status_code == 204


def test_a_dispatch_without_a_listening_workflow_starts_nothing(fakehub):
    fakehub.create_repo("octo", "bare", {"README.md": "hi\n"})
    _dispatch(fakehub, "octo/bare")
    assert fakehub.repo("octo/bare").dispatches and not fakehub.state.workflow_runs
    assert fakehub.deliveries("workflow_run") == []


def test_our_workflow_starts_a_run_named_after_the_draftsmith_run(fakehub):
    fakehub.create_repo("octo", "demo", {".github/workflows/draftsmith.yml": WORKFLOW})
    _dispatch(fakehub, "octo/demo", event_type="something-else")
    assert not fakehub.state.workflow_runs
    _dispatch(fakehub, "octo/demo")
    [run] = fakehub.state.workflow_runs.values()
    assert run.display_title == "Draftsmith run 3 (task 2)"
    [delivery] = fakehub.deliveries("workflow_run", "requested")
    assert delivery.payload["workflow_run"]["display_title"] == "Draftsmith run 3 (task 2)"
