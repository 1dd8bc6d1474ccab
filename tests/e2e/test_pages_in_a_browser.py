"""Every page in a real browser, on a desktop and on a phone: styled, readable, no dead links."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import REPO, Scene, command_config
from tests.support.browser import PHONE, assert_looks_like_a_product, chromium, open_page, screenshot  # noqa: F401

WAIT_FOR_GO = ('echo agent-started; echo "looking at the README" >&2; go="$(dirname "$DRAFTSMITH_PROMPT_FILE")/go"; '
               'i=0; while [ ! -f "$go" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; echo "fixing it now"; ')


def test_the_status_page_before_and_after_github_is_configured(make_draftsmith, chromium):
    bare = make_draftsmith({}, worker=False)
    for name, viewport in (("status-unconfigured", None), ("status-unconfigured-phone", PHONE)):
        page = open_page(chromium, bare.url + "/", **({"viewport": viewport} if viewport else {}))
        assert "not connected to GitHub yet" in page.inner_text("h1")
        assert "GITHUB_WEBHOOK_SECRET" in page.inner_text("main")
        assert_looks_like_a_product(page)
        screenshot(page, name)

    configured = make_draftsmith(worker=False)
    page = open_page(chromium, configured.url + "/")
    assert page.inner_text("h1") == "Draftsmith is running"
    assert_looks_like_a_product(page)
    screenshot(page, "status-configured")


def test_the_task_page_shows_the_task_and_its_log_growing_live(scene: Scene, fakehub, chromium):
    scene.repo(command_config(WAIT_FOR_GO + "sed -i 's/tpyo/typo/' README.md"))
    number = fakehub.open_issue(REPO, "Fix typo in README")
    fakehub.assign(REPO, number, scene.bot)
    run = scene.wait_for(lambda: next((r for t in scene.tasks() for r in scene.runs(t.id)
                                       if any(l.text == "agent-started" for l in scene.logs(r.id))), None),
                         30, "the agent to start")
    [task] = scene.tasks()
    url = fakehub.state.check_runs[task.check_run_id].details_url  # where a maintainer clicks through

    page = open_page(chromium, url)
    assert page.inner_text("h1") == "Fix typo in README"
    assert page.inner_text("#status") == "running"
    assert "agent-started" in page.inner_text("#log")
    links = page.evaluate("[...document.querySelectorAll('main a')].map(a => a.getAttribute('href'))")
    assert f"{fakehub.api_url}/{REPO}/issues/{number}" in links and f"{fakehub.api_url}/{REPO}/pull/{task.pr_number}" in links
    assert_looks_like_a_product(page)
    screenshot(page, "task-running")

    # The agent goes on: its lines arrive without a reload, and the badge turns when the task ends
    (Path(scene.app.settings.effective_workspace_dir) / f"run-{run.id}" / "artifacts" / "go").write_text("")
    page.wait_for_function("document.getElementById('log').innerText.includes('fixing it now')", timeout=20_000)
    page.wait_for_function("document.getElementById('status').innerText === 'succeeded'", timeout=30_000)
    assert "status succeeded" in page.get_attribute("#status", "class")
    screenshot(page, "task-succeeded")

    phone = open_page(chromium, url, viewport=PHONE)
    assert_looks_like_a_product(phone)
    screenshot(phone, "task-succeeded-phone")


def test_a_task_link_without_its_token_finds_nothing_and_says_where_to_look(scene: Scene, fakehub, chromium):
    page = open_page(chromium, scene.app.url + "/tasks/1")
    assert page.inner_text("h1") == "No task 1"
    assert "check run" in page.inner_text("main")
    assert_looks_like_a_product(page)
    screenshot(page, "task-not-found")
