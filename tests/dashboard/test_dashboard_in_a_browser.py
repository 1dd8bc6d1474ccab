"""The dashboard in a real browser against the fake GitHub: sign in, tasks, a live task, Cancel and Retry, sign out."""

from __future__ import annotations

from pathlib import Path

from app import audit
from tests.dashboard.conftest import sign_in
from tests.e2e.conftest import REPO, command_config
from tests.support.browser import PHONE, assert_looks_like_a_product, screenshot

SECRET = "octo/secret"
# Says it started, waits for a `go` file, says more, then works (sleeps) until cancelled.
LONG_RUN = ('echo agent-started; go="$(dirname "$DRAFTSMITH_PROMPT_FILE")/go"; i=0; '
            'while [ ! -f "$go" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; echo "fixing it now"; '
            'i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo never-cancelled')


def _started(scene, attempt: int = 1):
    return scene.wait_for(lambda: next((r for t in scene.tasks() for r in scene.runs(t.id)
                                        if r.attempt == attempt and t.repo_full_name == REPO
                                        and any(l.text == "agent-started" for l in scene.logs(r.id))), None),
                          30, f"attempt {attempt}'s agent to start")


def test_people_see_what_github_lets_them_and_a_writer_watches_and_cancels_a_running_task(dashboard, fakehub, chromium):
    scene = dashboard
    # Given two repositories: alice writes to both, rita only reads octo/demo
    scene.repo(command_config(LONG_RUN))
    fakehub.create_repo("octo", "secret", {"README.md": "# Secret\n", ".github/draftsmith.yml": command_config("true")})
    fakehub.add_user("alice", permissions={SECRET: "write"})
    secret_issue = fakehub.open_issue(SECRET, "Secret work")
    fakehub.assign(SECRET, secret_issue, scene.bot)
    scene.wait_settled()
    number = fakehub.open_issue(REPO, "Fix typo in README")
    fakehub.assign(REPO, number, scene.bot)
    run = _started(scene)
    task = next(t for t in scene.tasks() if t.repo_full_name == REPO)

    # When alice signs in, she sees both repositories' tasks, newest first
    alice = sign_in(chromium, scene.app.url, "alice")
    assert alice.inner_text("h1") == "Tasks"
    rows = alice.locator("table.tasks tbody tr").all_inner_texts()
    assert [REPO in rows[0], SECRET in rows[1]] == [True, True]
    assert "@alice" in alice.inner_text("header")
    [cookie] = [c for c in alice.context.cookies() if c["name"] == "draftsmith_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and "ghu_" not in cookie["value"]
    assert_looks_like_a_product(alice)
    screenshot(alice, "dashboard-tasks")
    # and filtering by repository narrows the list
    alice.get_by_label("Repository").select_option(SECRET)
    alice.get_by_role("button", name="Filter").click()
    assert [SECRET in r for r in alice.locator("table.tasks tbody tr").all_inner_texts()] == [True]

    # And rita, who reads only octo/demo, sees only its task; the other one is not found for her
    rita = sign_in(chromium, scene.app.url, "rita")
    rows = rita.locator("table.tasks tbody tr").all_inner_texts()
    assert len(rows) == 1 and REPO in rows[0]
    secret_task = next(t for t in scene.tasks() if t.repo_full_name == SECRET)
    assert rita.goto(f"{scene.app.url}/dashboard/tasks/{secret_task.id}").status == 404

    # When alice opens the running task, she sees its state and the log so far, then lines arrive live
    alice.goto(f"{scene.app.url}/dashboard/tasks/{task.id}")
    assert alice.inner_text("#status") == "running"
    assert "agent-started" in alice.inner_text("#log")
    links = alice.evaluate("[...document.querySelectorAll('main a')].map(a => a.getAttribute('href'))")
    assert f"{fakehub.api_url}/{REPO}/issues/{number}" in links
    assert f"{fakehub.api_url}/{REPO}/pull/{task.pr_number}" in links
    assert f"{fakehub.api_url}/{REPO}/runs/{task.check_run_id}" in links
    # (and in a browser without EventSource, which polls, she pauses the log first)
    poller = sign_in(chromium, scene.app.url, "alice")
    poller.add_init_script("delete window.EventSource; window.EventSource = undefined;")
    poller.goto(f"{scene.app.url}/dashboard/tasks/{task.id}")
    assert poller.evaluate("typeof window.EventSource") == "undefined"
    poller.get_by_role("button", name="Pause").click()
    (Path(scene.app.settings.effective_workspace_dir) / f"run-{run.id}" / "artifacts" / "go").write_text("")
    alice.wait_for_function("document.getElementById('log').innerText.includes('fixing it now')", timeout=20_000)
    poller.wait_for_timeout(2500)  # a poll or two
    assert "fixing it now" not in poller.inner_text("#log") and "Paused" in poller.inner_text("#live")
    poller.get_by_role("button", name="Resume").click()
    poller.wait_for_function("document.getElementById('log').innerText.includes('fixing it now')", timeout=10_000)
    poller.context.close()
    assert_looks_like_a_product(alice)
    screenshot(alice, "dashboard-task-running")

    # And rita, a reader, sees the task but no buttons; a POST she forges is refused, and nothing changes
    rita.goto(f"{scene.app.url}/dashboard/tasks/{task.id}")
    assert rita.inner_text("#status") == "running"
    assert rita.get_by_role("button", name="Cancel").count() == 0
    assert "needs write access" in rita.inner_text("main")
    screenshot(rita, "dashboard-task-read-only")
    rita_csrf = rita.get_attribute("header form input[name=csrf]", "value")
    refused = rita.request.post(f"{scene.app.url}/dashboard/tasks/{task.id}/cancel", form={"csrf": rita_csrf},
                                max_redirects=0)
    assert refused.status == 403 and "needs write access" in refused.text()
    forged = alice.request.post(f"{scene.app.url}/dashboard/tasks/{task.id}/cancel", form={"csrf": "guessed"},
                                max_redirects=0)
    assert forged.status == 403
    assert next(t for t in scene.tasks() if t.id == task.id).status == "running"
    assert not scene.runs(task.id)[0].cancel_requested

    # When alice presses Cancel, the run stops, and GitHub's check run and progress comment say who cancelled
    alice.get_by_role("button", name="Cancel").click()
    assert "Cancel asked for" in alice.inner_text(".notice")
    [task] = [t for t in scene.wait_settled(timeout=30) if t.id == task.id]
    assert task.status == "cancelled" and "cancelled by @alice from the dashboard" in task.status_reason
    check = fakehub.state.check_runs[task.check_run_id]
    assert (check.status, check.conclusion) == ("completed", "cancelled")
    assert check.output["title"].startswith("Cancelled") and "alice from the dashboard" in check.output["title"]
    progress = next(c for c in scene.bot_comments(number) if "Draftsmith" in c.body)
    assert "Cancelled" in progress.body
    alice.reload()
    assert alice.inner_text("#status") == "cancelled"
    screenshot(alice, "dashboard-task-cancelled")

    # When she presses Retry, a second attempt starts; she cancels that one too
    alice.get_by_role("button", name="Retry").click()
    assert "Retried" in alice.inner_text(".notice")
    _started(scene, attempt=2)
    alice.reload()
    alice.get_by_role("button", name="Cancel").click()
    [task] = [t for t in scene.wait_settled(timeout=30) if t.id == task.id]
    assert task.status == "cancelled" and len(scene.runs(task.id)) == 2
    # and the audit log has each press, as for the check run's buttons
    pressed = [(e.actor, e.action, e.source) for e in reversed(audit.entries(scene.app.engine, repo=REPO))
               if e.action in ("task.cancelled", "task.retried")]
    assert pressed == [("alice", "task.cancelled", f"dashboard cancel on #{number}"),
                       ("alice", "task.retried", f"dashboard retry on #{number}"),
                       ("alice", "task.cancelled", f"dashboard cancel on #{number}")]

    # The task page reads well on a phone too
    phone = sign_in(chromium, scene.app.url, "alice", viewport=PHONE)
    phone.goto(f"{scene.app.url}/dashboard/tasks/{task.id}")
    assert_looks_like_a_product(phone)
    screenshot(phone, "dashboard-task-phone")
    phone.goto(f"{scene.app.url}/dashboard/")
    assert_looks_like_a_product(phone)
    screenshot(phone, "dashboard-tasks-phone")

    # The signed link from the check run still opens the read-only page without signing in
    signed = chromium.new_context().new_page()
    signed.goto(check.details_url)
    assert signed.inner_text("h1") == "Fix typo in README"

    # When alice signs out, the dashboard asks her to sign in again
    [kept] = [c for c in alice.context.cookies() if c["name"] == "draftsmith_session"]
    alice.get_by_role("button", name="Sign out").click()
    assert alice.get_by_role("link", name="Sign in with GitHub").count() == 1
    alice.goto(f"{scene.app.url}/dashboard/tasks/{task.id}")
    assert "/login/oauth/authorize" in alice.url
    # and a copy of her session cookie taken before is worth nothing: GitHub revoked its token
    thief = chromium.new_context()
    thief.add_cookies([kept])
    stolen = thief.new_page()
    stolen.goto(f"{scene.app.url}/dashboard/")
    assert "/login/oauth/authorize" in stolen.url


def test_a_queued_task_shows_how_many_start_before_it(dashboard, chromium):
    scene = dashboard
    scene.repo(command_config("true"))
    scene.app.hold_runs()
    scene.assign_in_turn([f"Fix {i}" for i in range(3)])
    last = scene.tasks()[-1]

    alice = sign_in(chromium, scene.app.url, "alice", viewport=PHONE)
    alice.goto(f"{scene.app.url}/dashboard/tasks/{last.id}")
    assert alice.inner_text("#status") == "queued"
    assert alice.inner_text("#ahead").strip() == "· 2 ahead in the queue"
    screenshot(alice, "dashboard-task-queued")
    scene.app.release_runs()
    scene.wait_settled()
    alice.goto(f"{scene.app.url}/dashboard/tasks/{last.id}")
    assert alice.locator("#ahead").count() == 0
