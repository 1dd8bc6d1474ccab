"""Git over smart HTTP: real `git` clones and pushes with an installation token, refused without one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


GIT_ENV = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=check)


def test_clone_and_push_with_a_token_update_refs_seen_by_rest(fakehub, tmp_path):
    fakehub.create_repo("octo", "demo", files={"README.md": "hello\n"})
    url = fakehub.authenticated_clone_url("octo/demo")
    git("clone", url, str(tmp_path / "work"))
    assert (tmp_path / "work" / "README.md").read_text() == "hello\n"
    (tmp_path / "work" / "fix.txt").write_text("fixed\n")
    git("checkout", "-b", "draftsmith/issue-1", cwd=tmp_path / "work")
    git("add", "fix.txt", cwd=tmp_path / "work")
    git("commit", "-m", "Fix", cwd=tmp_path / "work")
    git("push", "origin", "draftsmith/issue-1", cwd=tmp_path / "work")
    pushed = git("rev-parse", "HEAD", cwd=tmp_path / "work").stdout.strip()
    ref = fakehub.as_app("octo/demo").get("/repos/octo/demo/git/ref/heads/draftsmith/issue-1")
    assert ref.status_code == 200
    assert ref.json()["object"]["sha"] == pushed


def test_clone_without_a_token_or_with_a_wrong_one_is_refused(fakehub, tmp_path):
    clone_url = fakehub.create_repo("octo", "demo")
    anonymous = git("clone", clone_url, str(tmp_path / "a"), check=False)
    assert anonymous.returncode != 0
    wrong = git("clone", clone_url.replace("://", "://x-access-token:ghs_wrong@"), str(tmp_path / "b"), check=False)
    assert wrong.returncode != 0
    assert "Authentication failed" in wrong.stderr


def test_token_of_another_installation_cannot_clone(fakehub, tmp_path):
    fakehub.create_repo("octo", "demo")
    fakehub.create_repo("other", "secret")
    token = fakehub.installation_token("octo/demo")
    result = git("clone", fakehub.authenticated_clone_url("other/secret", token), str(tmp_path / "c"), check=False)
    assert result.returncode != 0


def test_commit_made_through_the_git_data_api_is_fetchable_with_git(fakehub, tmp_path):
    fakehub.create_repo("octo", "demo", files={"README.md": "hello\n"})
    api = fakehub.as_app("octo/demo")
    main = api.get("/repos/octo/demo/git/ref/heads/main").json()["object"]["sha"]
    base_tree = api.get(f"/repos/octo/demo/git/commits/{main}").json()["tree"]["sha"]
    blob = api.post("/repos/octo/demo/git/blobs", json={"content": "new file\n", "encoding": "utf-8"})
    assert blob.status_code == 201
    tree = api.post("/repos/octo/demo/git/trees", json={
        "base_tree": base_tree,
        "tree": [{"path": "docs/notes.md", "mode": "100644", "type": "blob", "sha": blob.json()["sha"]}],
    })
    assert tree.status_code == 201
    commit = api.post("/repos/octo/demo/git/commits",
                      json={"message": "Add notes", "tree": tree.json()["sha"], "parents": [main]})
    assert commit.status_code == 201
    assert commit.json()["verification"]["verified"] is True
    created = api.post("/repos/octo/demo/git/refs", json={"ref": "refs/heads/notes", "sha": commit.json()["sha"]})
    assert created.status_code == 201

    git("clone", "--branch", "notes", fakehub.authenticated_clone_url("octo/demo"), str(tmp_path / "w"))
    assert (tmp_path / "w" / "docs" / "notes.md").read_text() == "new file\n"
    assert (tmp_path / "w" / "README.md").read_text() == "hello\n"
    compare = api.get("/repos/octo/demo/compare/main...notes")
    assert compare.status_code == 200, compare.text
    compare = compare.json()
    assert compare["ahead_by"] == 1 and compare["status"] == "ahead"
    assert [f["filename"] for f in compare["files"]] == ["docs/notes.md"]


def test_a_pull_request_needs_a_commit_the_base_lacks_and_an_empty_one_is_enough(fakehub):
    fakehub.create_repo("octo", "demo", files={"README.md": "hello\n"})
    api = fakehub.as_app("octo/demo")
    first = api.get("/repos/octo/demo/git/ref/heads/main").json()["object"]["sha"]
    tree = api.get(f"/repos/octo/demo/git/commits/{first}").json()["tree"]["sha"]

    def commit(parent: str) -> str:
        return api.post("/repos/octo/demo/git/commits",
                        json={"message": "empty", "tree": tree, "parents": [parent]}).json()["sha"]

    # A branch left behind at an older commit of main has nothing main lacks: refused, as GitHub does
    api.patch("/repos/octo/demo/git/refs/heads/main", json={"sha": commit(first)}).raise_for_status()
    api.post("/repos/octo/demo/git/refs", json={"ref": "refs/heads/behind", "sha": first}).raise_for_status()
    behind = api.post("/repos/octo/demo/pulls", json={"title": "t", "head": "behind", "base": "main"})
    assert behind.status_code == 422
    assert behind.json()["errors"][0]["message"] == "No commits between main and behind"

    # One empty commit on top of main is a commit main lacks
    main = api.get("/repos/octo/demo/git/ref/heads/main").json()["object"]["sha"]
    api.post("/repos/octo/demo/git/refs", json={"ref": "refs/heads/start", "sha": commit(main)}).raise_for_status()
    started = api.post("/repos/octo/demo/pulls", json={"title": "t", "head": "start", "base": "main", "draft": True})
    assert started.status_code == 201 and started.json()["draft"] is True


def test_an_app_without_the_workflows_permission_may_not_push_a_workflow_file(fakehub):
    fakehub.create_repo("octo", "demo", files={"README.md": "hello\n"})
    api = fakehub.as_app("octo/demo")
    main = api.get("/repos/octo/demo/git/ref/heads/main").json()["object"]["sha"]
    base_tree = api.get(f"/repos/octo/demo/git/commits/{main}").json()["tree"]["sha"]

    def commit_with(path: str) -> str:
        blob = api.post("/repos/octo/demo/git/blobs", json={"content": "x\n", "encoding": "utf-8"}).json()["sha"]
        tree = api.post("/repos/octo/demo/git/trees", json={
            "base_tree": base_tree, "tree": [{"path": path, "mode": "100644", "type": "blob", "sha": blob}]}).json()
        return api.post("/repos/octo/demo/git/commits",
                        json={"message": "m", "tree": tree["sha"], "parents": [main]}).json()["sha"]

    refused = api.post("/repos/octo/demo/git/refs", json={"ref": "refs/heads/ci", "sha": commit_with(".github/workflows/ci.yml")})
    assert refused.status_code == 422
    assert "without `workflows` permission" in refused.json()["message"]
    moved = api.patch("/repos/octo/demo/git/refs/heads/main", json={"sha": commit_with(".github/workflows/ci.yml")})
    assert moved.status_code == 422
    # Anything else is fine
    assert api.post("/repos/octo/demo/git/refs", json={"ref": "refs/heads/docs", "sha": commit_with("docs/a.md")}).status_code == 201


def test_a_check_run_lists_the_pull_request_its_head_moved_to_by_push_or_by_the_git_data_api(fakehub, tmp_path):
    # Given a draft PR whose branch starts one empty commit ahead of main
    fakehub.create_repo("octo", "demo", files={"README.md": "hello\n"})
    api = fakehub.as_app("octo/demo")
    main = api.get("/repos/octo/demo/git/ref/heads/main").json()["object"]["sha"]
    tree = api.get(f"/repos/octo/demo/git/commits/{main}").json()["tree"]["sha"]
    start = api.post("/repos/octo/demo/git/commits", json={"message": "start", "tree": tree, "parents": [main]}).json()["sha"]
    api.post("/repos/octo/demo/git/refs", json={"ref": "refs/heads/draftsmith/issue-1", "sha": start}).raise_for_status()
    number = api.post("/repos/octo/demo/pulls", json={"title": "t", "head": "draftsmith/issue-1", "base": "main",
                                                      "draft": True}).json()["number"]

    def pulls_at(sha: str) -> list[int]:
        run = api.post("/repos/octo/demo/check-runs", json={"name": "draftsmith", "head_sha": sha})
        assert run.status_code == 201, run.text
        return [p["number"] for p in run.json()["pull_requests"]]

    assert pulls_at(start) == [number]

    # When the branch moves by a push over git, then the check run on the new head lists the PR, the old none
    git("clone", "--branch", "draftsmith/issue-1", fakehub.authenticated_clone_url("octo/demo"), str(tmp_path / "w"))
    (tmp_path / "w" / "fix.txt").write_text("fixed\n")
    git("add", "fix.txt", cwd=tmp_path / "w")
    git("commit", "-m", "Fix", cwd=tmp_path / "w")
    git("push", "origin", "draftsmith/issue-1", cwd=tmp_path / "w")
    pushed = git("rev-parse", "HEAD", cwd=tmp_path / "w").stdout.strip()
    assert (pulls_at(pushed), pulls_at(start)) == ([number], [])

    # When it moves back through the Git Data API, the same holds the other way round
    api.patch("/repos/octo/demo/git/refs/heads/draftsmith/issue-1", json={"sha": start, "force": True}).raise_for_status()
    assert (pulls_at(start), pulls_at(pushed)) == ([number], [])

    # And once the branch is deleted, no check run lists it
    assert api.delete("/repos/octo/demo/git/refs/heads/draftsmith/issue-1").status_code == 204
    assert pulls_at(start) == []


def test_the_git_server_advertises_the_refs_dulwich_would_packed_loose_and_tagged(tmp_path):
    from dulwich.objects import Tag

    from app.fakehub import git as fakegit

    git_dir = tmp_path / "r.git"
    sha = fakegit.init_repository(git_dir, "main", {"README.md": "x\n"}, fakegit.default_signature("a", "a@x"))
    store = fakegit.open_repo(git_dir)
    for i in range(3):
        store.refs[f"refs/heads/draftsmith/issue-{i}".encode()] = sha.encode()
    store.refs.pack_refs(all=True)
    store.refs[b"refs/heads/draftsmith/issue-1"] = sha.encode()  # loose again, over its packed entry
    tag = Tag()
    tag.name, tag.object, tag.message = b"v1", (fakegit.Commit, sha.encode()), b"v1"
    tag.tagger, tag.tag_time, tag.tag_timezone = b"a <a@x>", 0, 0
    store.object_store.add_object(tag)
    store.refs[b"refs/tags/v1"] = tag.id

    served, plain = fakegit.ServedRepo(str(git_dir)), fakegit.open_repo(git_dir)
    assert served.get_refs() == plain.get_refs()
    assert served.refs.get_symrefs() == plain.refs.get_symrefs() == {b"HEAD": b"refs/heads/main"}
    assert {ref: served.get_peeled(ref) for ref in plain.get_refs()} == \
        {ref: plain.get_peeled(ref) for ref in plain.get_refs()}
