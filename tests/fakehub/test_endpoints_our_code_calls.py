"""Every GitHub endpoint Draftsmith calls (found by grepping app/) is served by the fake and parses in githubkit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from githubkit import AppAuthStrategy, GitHub

APP_DIR = Path(__file__).resolve().parents[2] / "app"
OWNER, REPO = "octo", "demo"


def rest_calls_in_our_code() -> set[str]:
    """`rest.<namespace>.<method>` names used anywhere in app/ (async_ prefix dropped), outside the fake itself."""
    names = set()
    for path in APP_DIR.rglob("*.py"):
        if "fakehub" in path.parts:
            continue
        for namespace, method in re.findall(r"rest\.(\w+)\.(\w+)", path.read_text()):
            names.add(f"{namespace}.{method.removeprefix('async_')}")
    return names


def scenario(fakehub) -> dict[str, Callable[[GitHub, dict[str, Any]], Any]]:
    """One call per endpoint, in an order where each can use what earlier ones created (kept in `ids`)."""
    o, r = OWNER, REPO

    def branch_commit(gh: GitHub, ids: dict[str, Any]) -> Any:
        main = gh.rest.git.get_ref(o, r, "heads/main").parsed_data.object_.sha
        ids["main"] = main
        return main

    return {
        "repos.get": lambda gh, ids: gh.rest.repos.get(o, r).parsed_data,
        "repos.get_branch": lambda gh, ids: gh.rest.repos.get_branch(o, r, "main").parsed_data,
        "repos.get_content": lambda gh, ids: gh.rest.repos.get_content(o, r, ".github/draftsmith.yml", ref="main").parsed_data,
        "repos.get_collaborator_permission_level":
            lambda gh, ids: gh.rest.repos.get_collaborator_permission_level(o, r, "alice").parsed_data,
        "git.get_ref": branch_commit,
        "git.get_commit": lambda gh, ids: gh.rest.git.get_commit(o, r, ids["main"]).parsed_data,
        "git.create_blob": lambda gh, ids: ids.__setitem__(
            "blob", gh.rest.git.create_blob(o, r, content="fixed\n", encoding="utf-8").parsed_data.sha),
        "git.create_tree": lambda gh, ids: ids.__setitem__("tree", gh.rest.git.create_tree(
            o, r, base_tree=gh.rest.git.get_commit(o, r, ids["main"]).parsed_data.tree.sha,
            tree=[{"path": "src/fix.py", "mode": "100644", "type": "blob", "sha": ids["blob"]}]).parsed_data.sha),
        "git.create_commit": lambda gh, ids: ids.__setitem__("commit", gh.rest.git.create_commit(
            o, r, message="Fix", tree=ids["tree"], parents=[ids["main"]]).parsed_data.sha),
        "git.create_ref": lambda gh, ids: gh.rest.git.create_ref(o, r, ref="refs/heads/fix", sha=ids["commit"]).parsed_data,
        "git.update_ref": lambda gh, ids: gh.rest.git.update_ref(o, r, "heads/fix", sha=ids["commit"], force=True).parsed_data,
        "issues.get": lambda gh, ids: gh.rest.issues.get(o, r, 1).parsed_data,
        "issues.create_comment": lambda gh, ids: ids.__setitem__(
            "comment", gh.rest.issues.create_comment(o, r, 1, body="On it").parsed_data.id),
        "issues.update_comment": lambda gh, ids: gh.rest.issues.update_comment(o, r, ids["comment"], body="Done").parsed_data,
        "issues.list_comments": lambda gh, ids: gh.rest.issues.list_comments(o, r, 1).parsed_data,
        "reactions.create_for_issue": lambda gh, ids: gh.rest.reactions.create_for_issue(o, r, 1, content="eyes").parsed_data,
        "reactions.create_for_issue_comment":
            lambda gh, ids: gh.rest.reactions.create_for_issue_comment(o, r, ids["comment"], content="rocket").parsed_data,
        "checks.create": lambda gh, ids: ids.__setitem__("check", gh.rest.checks.create(
            o, r, name="draftsmith", head_sha=ids["main"], status="in_progress",
            actions=[{"label": "Retry", "description": "Run again", "identifier": "retry"}]).parsed_data.id),
        "checks.update": lambda gh, ids: gh.rest.checks.update(
            o, r, ids["check"], conclusion="success", output={"title": "Done", "summary": "All good"}).parsed_data,
        "checks.list_for_ref": lambda gh, ids: gh.rest.checks.list_for_ref(o, r, "main").parsed_data,
        "checks.list_suites_for_ref": lambda gh, ids: gh.rest.checks.list_suites_for_ref(o, r, "main").parsed_data,
        "pulls.create": lambda gh, ids: ids.__setitem__("pull", gh.rest.pulls.create(
            o, r, title="Fix", head="fix", base="main", body="Closes #1", draft=True).parsed_data.number),
        "pulls.get": lambda gh, ids: gh.rest.pulls.get(o, r, ids["pull"]).parsed_data,
        "pulls.list": lambda gh, ids: gh.rest.pulls.list(o, r, head=f"{o}:fix").parsed_data,
        "pulls.update": lambda gh, ids: gh.rest.pulls.update(o, r, ids["pull"], body="Closes #1\n\nUpdated").parsed_data,
        "pulls.request_reviewers":
            lambda gh, ids: gh.rest.pulls.request_reviewers(o, r, ids["pull"], reviewers=["alice"]).parsed_data,
        "pulls.create_review_comment": lambda gh, ids: ids.__setitem__("review_comment", gh.rest.pulls.create_review_comment(
            o, r, ids["pull"], body="nit", commit_id=ids["commit"], path="src/fix.py", line=1).parsed_data.id),
        "pulls.list_review_comments": lambda gh, ids: gh.rest.pulls.list_review_comments(o, r, ids["pull"]).parsed_data,
        "pulls.list_reviews": lambda gh, ids: gh.rest.pulls.list_reviews(o, r, ids["pull"]).parsed_data,
        "reactions.create_for_pull_request_review_comment":
            lambda gh, ids: gh.rest.reactions.create_for_pull_request_review_comment(
                o, r, ids["review_comment"], content="eyes").parsed_data,
        "repos.create_dispatch_event":
            lambda gh, ids: gh.rest.repos.create_dispatch_event(o, r, event_type="draftsmith-run", client_payload={"task": 1}),
        "actions.list_workflow_runs_for_repo": lambda gh, ids: ids.__setitem__("run", gh.rest.actions.list_workflow_runs_for_repo(
            o, r, event="repository_dispatch").parsed_data.workflow_runs[0].id),
        "actions.get_workflow_run": lambda gh, ids: gh.rest.actions.get_workflow_run(o, r, ids["run"]).parsed_data,
        "actions.list_jobs_for_workflow_run":
            lambda gh, ids: gh.rest.actions.list_jobs_for_workflow_run(o, r, ids["run"]).parsed_data,
        "actions.download_job_logs_for_workflow_run": lambda gh, ids: gh.rest.actions.download_job_logs_for_workflow_run(
            o, r, gh.rest.actions.list_jobs_for_workflow_run(o, r, ids["run"]).parsed_data.jobs[0].id).text,
        "actions.cancel_workflow_run": lambda gh, ids: gh.rest.actions.cancel_workflow_run(o, r, ids["run"]),
        "repos.compare_commits": lambda gh, ids: gh.rest.repos.compare_commits(o, r, "main...fix").parsed_data,
        "git.delete_ref": lambda gh, ids: gh.rest.git.delete_ref(o, r, "heads/fix"),
    }


def test_every_endpoint_our_code_calls_is_served_and_parses(fakehub):
    # Given a repository with a config file, an issue opened by alice, and alice a collaborator
    # The workflow file makes the dispatch start a run, as on GitHub.
    workflow = "on:\n  repository_dispatch:\n    types: [draftsmith-run]\njobs: {}\n"
    fakehub.create_repo(OWNER, REPO, files={"README.md": "hi\n", ".github/draftsmith.yml": "agent: aider\n",
                                            ".github/workflows/draftsmith.yml": workflow})
    fakehub.add_user("alice", permissions={f"{OWNER}/{REPO}": "write"})
    fakehub.open_issue(f"{OWNER}/{REPO}", "Fix the typo", as_user="alice")
    calls = scenario(fakehub)
    missing = rest_calls_in_our_code() - set(calls)
    assert not missing, f"our code calls endpoints this test (and maybe the fake) does not cover: {sorted(missing)}"

    # When githubkit, authenticated as the App's installation, calls each of them
    app = GitHub(AppAuthStrategy(fakehub.app_id, fakehub.private_key_pem.decode()), base_url=fakehub.api_url)
    installation = app.rest.apps.get_repo_installation(OWNER, REPO).parsed_data
    gh = app.with_auth(app.auth.as_installation(installation.id))
    ids: dict[str, Any] = {}
    for name, call in calls.items():
        call(gh, ids)

    # Then every call succeeded with a typed answer, the fake holds the results, and nothing broke its contract
    failures = [(r.method, r.path, r.status) for r in fakehub.requests() if r.status >= 400]
    assert failures == []
    repo = fakehub.repo(f"{OWNER}/{REPO}")
    [pull] = repo.pulls
    assert pull.pull.draft and pull.user.login == fakehub.bot_login
    assert [u.login for u in pull.pull.requested_reviewers] == ["alice"]
    assert fakehub.state.check_runs[ids["check"]].conclusion == "success"
    assert fakehub.state.comments[ids["comment"]].body == "Done"


def test_graphql_ready_for_review_flips_draft(fakehub):
    fakehub.create_repo(OWNER, REPO)
    api = fakehub.as_app(f"{OWNER}/{REPO}")
    main = api.get(f"/repos/{OWNER}/{REPO}/git/ref/heads/main").json()["object"]["sha"]
    tree = api.post(f"/repos/{OWNER}/{REPO}/git/trees", json={"tree": [
        {"path": "a.txt", "mode": "100644", "type": "blob", "content": "a\n"}]}).json()["sha"]
    commit = api.post(f"/repos/{OWNER}/{REPO}/git/commits", json={"message": "a", "tree": tree, "parents": [main]}).json()
    api.post(f"/repos/{OWNER}/{REPO}/git/refs", json={"ref": "refs/heads/feature", "sha": commit["sha"]})
    pull = api.post(f"/repos/{OWNER}/{REPO}/pulls", json={"title": "A", "head": "feature", "base": "main", "draft": True}).json()
    assert pull["draft"] is True

    app = GitHub(AppAuthStrategy(fakehub.app_id, fakehub.private_key_pem.decode()), base_url=fakehub.api_url)
    gh = app.with_auth(app.auth.as_installation(fakehub.installation_id(f"{OWNER}/{REPO}")))
    result = gh.graphql(
        "mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) { pullRequest { isDraft } } }",
        {"id": pull["node_id"]},
    )
    assert result["markPullRequestReadyForReview"]["pullRequest"]["isDraft"] is False
    assert api.get(f"/repos/{OWNER}/{REPO}/pulls/{pull['number']}").json()["draft"] is False
    assert [d.action for d in fakehub.deliveries("pull_request")] == ["opened", "ready_for_review"]
