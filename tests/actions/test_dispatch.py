"""Starting a run in Actions: the payload we send, and what a user is told when GitHub refuses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from githubkit import GitHub, TokenAuthStrategy

from app.models import Run, Task
from app.engines.actions.dispatch import DispatchPayloadTooLarge, build_dispatch_payload, parse_run_name, run_name
from app.github.actions_api import cancel_actions_run, check_workflow_installed, dispatch

WORKFLOW = Path(__file__).resolve().parents[2] / "workflows" / "draftsmith.yml"


def _task_and_run(**task_fields) -> tuple[Task, Run]:
    fields = dict(id=12, installation_id=1, repo_full_name="octo/demo", issue_number=7, requester="alice",
                  trigger="assignment", agent="command", model=None, instruction="Fix the typo",
                  base_branch="main", base_sha="a" * 40, runner="actions")
    fields.update(task_fields)
    return Task(**fields), Run(id=34, task_id=12)


def _payload(**kwargs):
    task, run = _task_and_run()
    args = dict(callback_url="https://ds.example/api/runs/34/events", callback_token="dsr_secret",
                oidc_audience="https://ds.example")
    args.update(kwargs)
    return build_dispatch_payload(task, run, **args)


def test_the_payload_carries_what_the_runner_needs_within_githubs_limits():
    install = {"wheel": {"url": "https://ds.example/api/runner/0123456789abcdef/draftsmith-0.1.0-py3-none-any.whl",
                         "sha256": "f" * 64}, "requirements": ["httpx==0.28.1"]}
    payload = _payload(agent_options={"command": "sed -i s/teh/the/ README.md"}, time_limit_seconds=1800,
                       test_command="pytest -q", heartbeat_seconds=20, install=install)

    assert payload["event_type"] == "draftsmith-run"
    body = payload["client_payload"]
    assert len(body) <= 10
    assert (body["task_id"], body["run_id"], body["repository"]) == (12, 34, "octo/demo")
    assert body["agent"] == {"name": "command", "model": None, "options": {"command": "sed -i s/teh/the/ README.md"}}
    assert body["prompt"] == "Fix the typo"
    assert body["base"] == {"ref": "main", "sha": "a" * 40}
    assert body["callback"] == {"url": "https://ds.example/api/runs/34/events", "token": "dsr_secret",
                                "oidc_audience": "https://ds.example", "heartbeat_seconds": 20}
    assert body["run"] == {"time_limit_seconds": 1800, "test": "pytest -q"}
    assert body["install"] == install


def test_oidc_only_payloads_carry_no_credential_at_all():
    body = _payload(callback_token=None)["client_payload"]
    assert "token" not in body["callback"]
    assert "dsr_" not in json.dumps(body)


@pytest.mark.parametrize("option", ["openai_api_key", "GITHUB_TOKEN", "installation_token"])
def test_credentials_are_refused_in_agent_options(option):
    with pytest.raises(ValueError, match="credentials"):
        _payload(agent_options={option: "sk-live"})


def test_a_prompt_too_large_for_a_dispatch_is_refused_before_github_sees_it():
    with pytest.raises(DispatchPayloadTooLarge):
        _payload(prompt="x" * 70_000)


def test_the_workflow_run_name_is_the_one_the_app_parses():
    # The workflow builds its run-name with format(); the app finds its run in workflow_run events by it.
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert "format('Draftsmith run {0} (task {1})', github.event.client_payload.run_id, " \
           "github.event.client_payload.task_id)" in " ".join(workflow["run-name"].split())
    assert run_name(34, 12) == "Draftsmith run 34 (task 12)"
    assert parse_run_name(run_name(34, 12)) == (34, 12)
    assert parse_run_name("CI") is None
    assert parse_run_name(None) is None


@pytest.fixture
async def gh(fakehub):
    fakehub.create_repo("octo", "demo", {"README.md": "teh readme\n",
                                         ".github/workflows/draftsmith.yml": WORKFLOW.read_text()})
    fakehub.create_repo("octo", "bare", {"README.md": "no workflow\n"})
    async with GitHub(TokenAuthStrategy(fakehub.installation_token("octo/demo")), base_url=fakehub.api_url) as client:
        yield client


async def test_a_dispatch_reaches_github(gh, fakehub):
    payload = _payload()
    outcome = await dispatch(gh, "octo", "demo", payload)

    assert outcome.ok
    [recorded] = fakehub.repo("octo/demo").dispatches
    assert recorded.event_type == "draftsmith-run"
    assert recorded.client_payload == payload["client_payload"]


async def test_the_workflow_file_is_found_only_where_it_is_installed(gh):
    assert await check_workflow_installed(gh, "octo", "demo", "main")
    assert not await check_workflow_installed(gh, "octo", "bare", "main")


@pytest.mark.parametrize(("status", "hint"), [(403, "Contents: read and write"), (404, "Contents: read and write"),
                                             (422, "runner: sandbox")])
async def test_a_refused_dispatch_says_how_to_fix_it(gh, fakehub, status, hint):
    fakehub.fault("/repos/octo/demo/dispatches", status=status, method="POST")

    outcome = await dispatch(gh, "octo", "demo", _payload())

    assert not outcome.ok
    assert outcome.status == status
    assert hint in outcome.fix_hint
    assert fakehub.repo("octo/demo").dispatches == []


async def test_cancelling_the_actions_run(gh, fakehub):
    await dispatch(gh, "octo", "demo", _payload())
    [run] = [r for r in fakehub.state.workflow_runs.values() if r.repo == "octo/demo"]

    assert await cancel_actions_run(gh, "octo", "demo", run.id)
    assert run.conclusion == "cancelled"
    assert not await cancel_actions_run(gh, "octo", "demo", run.id)  # already finished: 409
