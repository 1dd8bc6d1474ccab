"""Keys and usage from the dashboard, and no page leaking another installation's tasks, logs or keys."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from app.credentials import CredentialStore, load_keyring
from app.engines.publish import save_artifact
from app.models import AuditEntry, utcnow
from app.tasks.service import TaskService
from app.tasks.states import Status
from tests.dashboard.conftest import sign_in
from tests.support.browser import PHONE, assert_looks_like_a_product, screenshot

SECRET_VALUE = "sk-ant-api03-abcdefghijklmnop-WXYZ"
DIFF = """diff --git a/README.md b/README.md
index 1111111..2222222 100644
--- a/README.md
+++ b/README.md
@@ -1,3 +1,3 @@
 # Demo
 
-A tpyo here.
+A typo here, fixed.
diff --git a/docs/new.md b/docs/new.md
new file mode 100644
--- /dev/null
+++ b/docs/new.md
@@ -0,0 +1,2 @@
+# New
+Written by the agent.
"""


def _finished_task(app, repo: str, installation_id: int, number: int, *, status: Status, agent: str,
                   seconds: int, cost: float | None):
    """A task that ran and ended, as the worker would have recorded it."""
    tasks = TaskService(app.engine)
    started = tasks.create(installation_id=installation_id, repo_full_name=repo, issue_number=number,
                           title=f"Task on #{number}", requester="alice", trigger="assignment", agent=agent)
    tasks.start_run(started.run.id, "worker-1")
    tasks.finish(started.run.id, status, reason=None if status is Status.SUCCEEDED else "it failed", cost_usd=cost)
    ended = utcnow()
    tasks.update_run(started.run.id, started_at=ended - timedelta(seconds=seconds), ended_at=ended)
    return started.task


def _audit(app, action: str) -> list[AuditEntry]:
    with Session(app.engine) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == action)).all())


def test_an_admin_adds_a_key_sees_only_its_last_four_characters_and_deletes_it(dashboard, fakehub, chromium):
    app = dashboard.app
    fakehub.create_repo("octo", "demo")
    fakehub.add_user("alice", permissions={"octo/demo": "admin"})
    fakehub.add_user("rita", permissions={"octo/demo": "write"})
    fakehub.create_repo("octo", "private-ops", private=True)  # in the installation, but not alice's
    installation = fakehub.installation_id("octo/demo")

    # When alice, an admin of octo/demo (not of all octo's repositories), adds a key for it
    alice = sign_in(chromium, app.url, "alice")
    alice.get_by_role("link", name="Keys").click()
    assert_looks_like_a_product(alice)
    assert alice.locator("select[name=repository] option").all_inner_texts() == ["octo/demo only"]
    alice.get_by_label("Name").fill("ANTHROPIC_API_KEY")
    alice.get_by_label("Value").fill(SECRET_VALUE)
    alice.get_by_label("For").select_option("octo/demo")
    alice.get_by_role("button", name="Add key").click()

    # Then the page lists it by name and scope with only its last four characters, and who set it
    assert "Stored ANTHROPIC_API_KEY" in alice.inner_text(".notice")
    row = alice.locator("table.keys tbody tr").inner_text()
    assert "ANTHROPIC_API_KEY" in row and "octo/demo" in row and "…WXYZ" in row and "alice" in row
    assert SECRET_VALUE not in alice.content()
    screenshot(alice, "dashboard-keys")
    # and it is stored encrypted for octo/demo's runs, with an audit entry naming alice and not the value
    store = CredentialStore(app.engine, load_keyring(app.settings))
    assert store.get_env(installation, "octo/demo") == {"ANTHROPIC_API_KEY": SECRET_VALUE}
    [entry] = _audit(app, "credential.set")
    assert (entry.actor, entry.source, entry.subject) == ("alice", "dashboard", "ANTHROPIC_API_KEY")
    assert SECRET_VALUE not in entry.details

    # And rita, who only writes, manages no keys; a key she forges a form for is refused
    rita = sign_in(chromium, app.url, "rita")
    rita.goto(f"{app.url}/dashboard/keys")
    assert "You administer no repository" in rita.inner_text("main")
    csrf = rita.get_attribute("header form input[name=csrf]", "value")
    refused = rita.request.post(f"{app.url}/dashboard/keys", form={
        "csrf": csrf, "installation": str(installation), "repository": "octo/demo", "name": "OPENAI_API_KEY",
        "value": "sk-forged-value-0000"}, max_redirects=0)
    assert refused.status == 403
    refused = rita.request.post(f"{app.url}/dashboard/keys/delete", form={
        "csrf": csrf, "installation": str(installation), "repository": "octo/demo", "name": "ANTHROPIC_API_KEY"},
        max_redirects=0)
    assert refused.status == 403
    assert [i.name for i in store.list(installation)] == ["ANTHROPIC_API_KEY"]

    # When alice deletes it, it is gone, and the audit log says so
    alice.get_by_role("button", name="Delete ANTHROPIC_API_KEY (octo/demo)").click()
    assert "Deleted ANTHROPIC_API_KEY" in alice.inner_text(".notice")
    assert store.list(installation) == []
    assert [e.actor for e in _audit(app, "credential.deleted")] == ["alice"]
    phone = sign_in(chromium, app.url, "alice", viewport=PHONE)
    phone.goto(f"{app.url}/dashboard/keys")
    assert_looks_like_a_product(phone)
    screenshot(phone, "dashboard-keys-phone")


def test_usage_counts_tasks_success_duration_and_cost_per_repository_and_agent(dashboard, fakehub, chromium):
    app = dashboard.app
    fakehub.create_repo("octo", "demo")
    fakehub.create_repo("octo", "api")
    fakehub.add_user("alice", permissions={"octo/demo": "write", "octo/api": "write"})
    installation = fakehub.installation_id("octo/demo")
    _finished_task(app, "octo/demo", installation, 1, status=Status.SUCCEEDED, agent="claude-code", seconds=60, cost=0.5)
    _finished_task(app, "octo/demo", installation, 2, status=Status.FAILED, agent="claude-code", seconds=180, cost=0.25)
    _finished_task(app, "octo/api", installation, 3, status=Status.SUCCEEDED, agent="codex", seconds=120, cost=None)

    alice = sign_in(chromium, app.url, "alice")
    alice.get_by_role("link", name="Usage").click()
    summary = alice.inner_text("main p")
    assert "3 tasks" in summary and "67%" in summary and "2 min 0 s" in summary and "$0.75" in summary
    tables = alice.locator("main table").all_inner_texts()
    assert "octo/demo\t2\t50%\t2 min 0 s\t$0.75" in tables[0] and "octo/api\t1\t100%\t2 min 0 s\t–" in tables[0]
    assert "claude-code\t2\t50%" in tables[1] and "codex\t1\t100%" in tables[1]
    assert alice.locator("svg.chart rect.bar.ok").count() == 30
    assert "3 tasks, 2 succeeded" in alice.locator("svg.chart g title").last.inner_html()
    assert_looks_like_a_product(alice)
    screenshot(alice, "dashboard-usage")
    phone = sign_in(chromium, app.url, "alice", viewport=PHONE)
    phone.goto(f"{app.url}/dashboard/usage")
    assert_looks_like_a_product(phone)
    screenshot(phone, "dashboard-usage-phone")


def test_no_route_shows_another_installations_tasks_logs_or_keys(dashboard, fakehub, chromium):
    # Given installation A (octo, alice's) and installation B (acme, bob's), each with a task and a key
    app = dashboard.app
    fakehub.create_repo("octo", "demo")
    fakehub.create_repo("acme", "tools")
    fakehub.add_user("alice", permissions={"octo/demo": "admin"})
    fakehub.add_user("bob", permissions={"acme/tools": "admin"})
    a, b = fakehub.installation_id("octo/demo"), fakehub.installation_id("acme/tools")
    mine = _finished_task(app, "octo/demo", a, 1, status=Status.FAILED, agent="codex", seconds=5, cost=0.1)
    theirs = _finished_task(app, "acme/tools", b, 1, status=Status.FAILED, agent="codex", seconds=5, cost=9.99)
    # the same repository name in another installation is still another installation's
    spoofed = _finished_task(app, "octo/demo", b, 2, status=Status.FAILED, agent="codex", seconds=5, cost=0.2)
    store = CredentialStore(app.engine, load_keyring(app.settings))
    store.set(b, "BOBS_KEY", "bob-secret-value-QRST")

    run = TaskService(app.engine).latest_run(mine.id)
    save_artifact(app.engine, run.id, "diff", DIFF, [])

    # Alice's own task opens, with what its run changed, file by file
    alice = sign_in(chromium, app.url, "alice")
    csrf = alice.get_attribute("header form input[name=csrf]", "value")
    assert alice.goto(f"{app.url}/dashboard/tasks/{mine.id}").status == 200
    files = alice.locator("details.diff summary").all_inner_texts()
    assert [" ".join(f.split()) for f in files] == ["README.md +1 −1", "docs/new.md +2 −0"]
    assert "+A typo here, fixed." in alice.inner_text("details.diff >> nth=0")
    screenshot(alice, "dashboard-task-diff")
    for task in (theirs, spoofed):
        for path in ("", "/logs"):
            assert alice.request.get(f"{app.url}/dashboard/tasks/{task.id}{path}").status == 404, path
        for verb in ("cancel", "retry"):
            answer = alice.request.post(f"{app.url}/dashboard/tasks/{task.id}/{verb}", form={"csrf": csrf},
                                        max_redirects=0)
            assert answer.status == 404, verb
    for path in ("/dashboard/keys", "/dashboard/keys/delete"):
        answer = alice.request.post(f"{app.url}{path}", form={"csrf": csrf, "installation": str(b), "repository": "",
                                                               "name": "BOBS_KEY", "value": "overwritten-value-0000"},
                                    max_redirects=0)
        assert answer.status == 404, path
    assert store.get_env(b, "acme/tools") == {"BOBS_KEY": "bob-secret-value-QRST"}
    for path in ("/dashboard/", "/dashboard/usage", "/dashboard/keys",
                 f"/dashboard/?repo=acme/tools", f"/dashboard/?requester=alice"):
        text = alice.request.get(f"{app.url}{path}").text()
        assert "acme" not in text and "BOBS_KEY" not in text and "$9.99" not in text and f"#{spoofed.issue_number}" not in text, path
