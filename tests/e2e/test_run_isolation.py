"""A hostile agent cannot reach the app's secrets or files, and the logs API serves scrubbed lines in order."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from sqlmodel import Session, select

from app.models import Artifact
from tests.e2e.conftest import REPO, command_config

SENTINEL = "worker-env-sentinel-3f9c1e"


def _everything_visible(scene, fakehub, task) -> str:
    """All text a user or attacker could later read: log lines, artifacts, every git object, PRs, comments."""
    parts = []
    for run in scene.runs(task.id):
        parts += [line.text for line in scene.logs(run.id)]
        with Session(scene.app.engine) as session:
            parts += [a.content for a in session.exec(select(Artifact).where(Artifact.run_id == run.id)).all()]
    git_dir = fakehub.repo(REPO).git_dir
    parts.append(subprocess.run(["git", "--git-dir", git_dir, "log", "-p", "--all", "--binary"],
                                capture_output=True, text=True, check=True).stdout)
    parts += [pr.body or "" for pr in scene.pulls()]
    parts += [c.body for c in fakehub.state.comments.values()]
    parts += [json.dumps(c.output) for c in scene.check_runs()]
    return "\n".join(parts)


def test_a_hostile_agent_cannot_read_the_apps_secrets_or_write_outside_its_workspace(scene, fakehub, tmp_path,
                                                                                    monkeypatch):
    # Given secrets the worker holds: the App key file, the database, the encryption key, its environment
    monkeypatch.setenv("DRAFTSMITH_TEST_SENTINEL", SENTINEL)
    settings = scene.app.settings
    key_path = Path(settings.github_private_key_path)
    key_text = key_path.read_text()
    key_body = key_text.splitlines()[5]
    database = Path(settings.database_url.split("sqlite:///", 1)[1])
    data_dir = Path(settings.data_dir)
    outside = [data_dir / "pwned", tmp_path / "pwned", database.parent / "pwned", key_path.parent / "pwned"]
    targets = [key_path, database, data_dir / "encryption.key", "/proc/1/environ", "/proc/self/environ"]
    steal = "; ".join(f'echo "== {t}"; cat "{t}" 2>&1 | head -c 20000' for t in targets)
    write = "; ".join(f'echo pwned > "{p}" 2>&1' for p in outside)
    hostile = (f"({steal}; echo '== env'; env; echo '== git config'; cat .git/config; "
               f"echo '== mounts'; cat /proc/mounts; ls -la / {database.parent} {data_dir} 2>&1) > loot.txt 2>&1; "
               f"echo tamper >> \"{key_path}\" 2>&1; echo x > \"{database}\" 2>&1; {write}; "
               f"cat loot.txt; sed -i 's/tpyo/typo/' README.md")
    scene.repo(command_config(hostile))
    number = fakehub.open_issue(REPO, "Fix typo in README")

    # When the agent runs through the whole path
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    # Then it ran (its loot was committed, so nothing was hidden by scrubbing) but got nothing of value
    assert task.status == "succeeded", task.status_reason
    loot = subprocess.run(["git", "--git-dir", fakehub.repo(REPO).git_dir, "show", f"{task.branch}:loot.txt"],
                          capture_output=True, text=True, check=True).stdout
    assert f"== {key_path}" in loot and "== env" in loot
    visible = _everything_visible(scene, fakehub, task)
    for secret in (key_body, settings.github_webhook_secret.get_secret_value(), SENTINEL, "SQLite format 3",
                   (data_dir / "encryption.key").read_text().strip(), "ghs_", "x-access-token"):
        assert secret not in visible, f"{secret[:12]}... leaked"
    for name in ("GITHUB_", "DATABASE_URL", "REDIS_URL", "DRAFTSMITH_TEST"):
        assert name not in loot.split("== env", 1)[1].split("== git config", 1)[0]
    # And nothing outside the workspace changed
    assert key_path.read_text() == key_text
    assert [p for p in outside if p.exists()] == []
    assert scene.tasks()[0].id == task.id, "the database still works"


def test_the_logs_api_serves_a_runs_lines_in_order_as_json_and_server_sent_events_scrubbed(scene, fakehub):
    secret = scene.app.settings.github_webhook_secret.get_secret_value()
    token = "ghs_" + "A1b2C3d4" * 5
    # A config that leaks a secret into the command itself, and a token-shaped string the agent prints.
    scene.repo(command_config(
        f"for i in $(seq 1 30); do echo line-$i; done; echo token {token}; echo secret {secret}; "
        "sleep 1.5; for i in $(seq 31 60); do echo line-$i; done; sed -i 's/tpyo/typo/' README.md"))
    number = fakehub.open_issue(REPO, "Fix typo in README")
    fakehub.assign(REPO, number, scene.bot)
    client = scene.app.client

    # While the agent runs, a browser opens the event stream from the start
    [task] = scene.wait_for(lambda: [t for t in scene.tasks() if t.status == "running"], 30, "the run to start")
    # The check run's details link is the way in: it carries the task's token.
    check = scene.check_run()
    assert check.details_url.startswith(f"{scene.app.url}/tasks/{task.id}?token=")
    token = check.details_url.split("token=", 1)[1]
    assert client.get(f"/api/tasks/{task.id}/logs").status_code == 404, "no token, no logs"
    events = []
    with client.stream("GET", f"/api/tasks/{task.id}/logs?after=0&token={token}",
                       headers={"Accept": "text/event-stream"}, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event: dict = {}
        for raw in response.iter_lines():
            if raw.startswith("event:"):
                event["event"] = raw.split(":", 1)[1].strip()
            elif raw.startswith("data:"):
                event["data"] = json.loads(raw.split(":", 1)[1].strip())
            elif raw == "" and event:
                events.append(event)
                if event.get("event") == "end":
                    break
                event = {}
    assert events[-1] == {"event": "end", "data": {"status": "succeeded"}}
    streamed = [e["data"] for e in events if e["event"] == "line"]
    seqs = [line["seq"] for line in streamed]
    assert seqs == list(range(1, len(seqs) + 1)), "every line once, in order, no gaps"
    agent_lines = [line["text"] for line in streamed if line["text"].startswith("line-")]
    assert agent_lines == [f"line-{i}" for i in range(1, 61)]

    # And the JSON API pages through the same lines after a given sequence number
    [task] = scene.wait_settled()
    whole = client.get(f"/api/tasks/{task.id}/logs", params={"after": 0, "token": token}).json()
    assert whole["finished"] is True and whole["status"] == "succeeded"
    assert [line["seq"] for line in whole["lines"]] == seqs
    middle = whole["lines"][9]["seq"]
    later = client.get(f"/api/tasks/{task.id}/logs", params={"after": middle, "limit": 5, "token": token}).json()
    assert [line["seq"] for line in later["lines"]] == seqs[10:15] and later["next_after"] == seqs[14]

    # And no secret reached either
    texts = "\n".join(line["text"] for line in whole["lines"]) + json.dumps(events)
    assert token not in texts and secret not in texts
    assert "token [redacted]" in texts and "secret [redacted]" in texts
    assert client.get(f"/api/tasks/{task.id}/logs", params={"after": -1, "token": token}).status_code == 400
    assert client.get("/api/tasks/999999/logs").status_code == 404
