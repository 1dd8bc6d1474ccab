"""The workflow installs exactly the Draftsmith that dispatched the run: the server's own wheel, hash-checked."""

from __future__ import annotations

import subprocess
from pathlib import Path

from app.engines.actions.runner_package import wheel_cache_dir
from tests.e2e.conftest import REPO
from tests.support.actions_runner import WORKFLOW, play_runner, run_install_step, runner_venv

ACTIONS_CONFIG = "runner: actions\nagent: command\ncommand: \"sed -i 's/tpyo/typo/' README.md && echo fixed\"\n"


def _dispatch(scene, fakehub) -> tuple[int, dict]:
    scene.repo(ACTIONS_CONFIG, files={".github/workflows/draftsmith.yml": WORKFLOW})
    number = fakehub.open_issue(REPO, "Fix typo in README", "The README says tpyo.")
    fakehub.assign(REPO, number, scene.bot)
    dispatch = scene.wait_for(lambda: fakehub.repo(REPO).dispatches[:1], what="a repository_dispatch")[0]
    scene.wait_for(lambda: scene.runs(scene.tasks()[0].id)[0].worker == "actions", what="the dispatch to finish")
    return number, dispatch.client_payload


def _served_file(draftsmith, payload: dict) -> Path:
    digest, filename = payload["install"]["wheel"]["url"].rsplit("/", 2)[-2:]
    return wheel_cache_dir(draftsmith.settings) / digest / filename


def test_the_install_step_installs_the_served_wheel_hash_checked_and_the_runner_works(scene, fakehub, draftsmith,
                                                                                      tmp_path):
    _number, payload = _dispatch(scene, fakehub)
    wheel = payload["install"]["wheel"]
    assert wheel["url"].startswith(f"{draftsmith.url}/api/runner/") and len(wheel["sha256"]) == 64
    assert "draftsmith" not in " ".join(payload["install"]["requirements"])

    venv = runner_venv(tmp_path)
    done = run_install_step(payload, tmp_path, venv, REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    pinned = (tmp_path / "draftsmith-install" / "requirements.txt").read_text()
    assert f"--hash=sha256:{wheel['sha256']}" in pinned
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import app; print(app.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert where.startswith(str(venv))

    # The installed runner, with only its pinned dependencies, runs the agent and reports back
    ran = play_runner(fakehub, payload, tmp_path, REPO, draftsmith=venv / "bin" / "draftsmith")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    [task] = scene.wait_settled()
    assert task.status == "succeeded", task.status_reason
    [pr] = scene.pulls()
    assert pr.pull.draft is False


def test_a_wheel_altered_by_one_byte_is_refused_and_the_run_fails_saying_why(scene, fakehub, draftsmith, tmp_path):
    number, payload = _dispatch(scene, fakehub)
    served = _served_file(draftsmith, payload)
    content = bytearray(served.read_bytes())
    content[len(content) // 2] ^= 0x01
    served.write_bytes(bytes(content))

    venv = runner_venv(tmp_path, with_requirements=False)
    done = run_install_step(payload, tmp_path, venv, REPO)
    assert done.returncode != 0
    assert "Refused Draftsmith's runner package" in done.stdout and payload["install"]["wheel"]["sha256"] in done.stdout
    assert not (venv / "bin" / "draftsmith").exists()

    [task] = scene.wait_settled()
    assert task.status == "failed" and "sha256" in task.status_reason and "nothing was installed" in task.status_reason
    [check] = scene.wait_for(lambda: [c for c in scene.check_runs() if c.status == "completed"], what="the check run")
    assert check.conclusion == "failure" and "Refused Draftsmith's runner package" in check.output["summary"]
    [pr] = scene.pulls()
    assert pr.pull.draft is True and "stays a draft" in pr.body, "the draft stays, saying why"
