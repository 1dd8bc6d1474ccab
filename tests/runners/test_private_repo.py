"""The run's private repo: what it fetches, the workspace it hands the agent, and what it reads back as changes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from app.engines.git.changes import ChangesRefused, RebaseConflict
from app.engines.git.private_repo import GitError, PrivateRepo


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def origin(tmp_path) -> Path:
    """A bare repository with `main` and a `feature` branch, reachable over file://."""
    seed = tmp_path / "seed"
    seed.mkdir()
    git(seed, "init", "-q", "-b", "main")
    (seed / "README.md").write_text("hello\n")
    (seed / "remove-me.txt").write_text("bye\n")
    (seed / "run.sh").write_text("#!/bin/sh\necho run\n")
    (seed / ".gitignore").write_text("build/\n*.log\n")
    (seed / "src").mkdir()
    (seed / "src" / "app.py").write_text("a = 1\nb = 2\nc = 3\n")
    git(seed, "add", "-A")
    git(seed, "-c", "user.name=s", "-c", "user.email=s@s", "commit", "-qm", "seed")
    git(seed, "checkout", "-qb", "feature")
    (seed / "feature.txt").write_text("feature\n")
    git(seed, "add", "-A")
    git(seed, "-c", "user.name=s", "-c", "user.email=s@s", "commit", "-qm", "feature work")
    git(seed, "checkout", "-q", "main")
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(bare))
    return bare


@pytest.fixture
def run(origin, tmp_path):
    """A run's private repo with `main` fetched, and the agent's workspace populated from it."""
    private = PrivateRepo.create(tmp_path / "run" / "git")
    base = private.fetch(f"file://{origin}", "main", None)
    workspace = tmp_path / "run" / "workspace"
    private.populate_workspace(workspace, "main", "https://github.com/octo/demo.git")
    return private, workspace, base


def by_path(changes):
    return {change.path: change for change in changes.files}


def moved_base(origin: Path, tmp_path: Path, path: str, content: str) -> None:
    other = tmp_path / "upstream"
    if not other.exists():
        git(tmp_path, "clone", "-q", str(origin), str(other))
    (other / path).write_text(content)
    git(other, "add", "-A")
    git(other, "-c", "user.name=u", "-c", "user.email=u@u", "commit", "-qm", "upstream")
    git(other, "push", "-q", "origin", "main")


def test_the_agent_gets_a_repository_of_its_own_pointing_at_github(run, origin):
    private, workspace, base = run

    assert base == git(origin, "rev-parse", "main")
    assert (workspace / "src" / "app.py").read_text() == "a = 1\nb = 2\nc = 3\n"
    assert git(workspace, "remote", "get-url", "origin") == "https://github.com/octo/demo.git"
    assert not (workspace / ".git" / "objects" / "info" / "alternates").exists()
    # It can commit without configuring anything, and that touches nothing of the private repo.
    (workspace / "new.txt").write_text("x")
    git(workspace, "add", "new.txt")
    git(workspace, "commit", "-qm", "agent commit")
    assert private.rev_parse("refs/heads/main") == base


def test_a_follow_up_gets_the_pull_requests_branch(origin, tmp_path):
    private = PrivateRepo.create(tmp_path / "git")
    sha = private.fetch(f"file://{origin}", "feature", None)
    workspace = tmp_path / "ws"
    private.populate_workspace(workspace, "feature", f"file://{origin}")

    assert sha == git(origin, "rev-parse", "feature")
    assert git(workspace, "rev-parse", "--abbrev-ref", "HEAD") == "feature"
    assert (workspace / "feature.txt").exists()


def test_added_modified_deleted_executable_and_symlink_files_are_found(run):
    private, ws, base = run
    (ws / "README.md").write_text("hello, world\n")
    (ws / "remove-me.txt").unlink()
    (ws / "docs").mkdir()
    (ws / "docs" / "guide.md").write_text("# Guide\n")
    (ws / "run.sh").chmod(0o755)
    (ws / "tool").write_text("#!/bin/sh\n")
    (ws / "tool").chmod(0o755)
    os.symlink("docs/guide.md", ws / "GUIDE.md")

    changes = private.changes(base, private.snapshot(ws, base))

    files = by_path(changes)
    assert set(files) == {"README.md", "remove-me.txt", "docs/guide.md", "run.sh", "tool", "GUIDE.md"}
    assert files["README.md"].content == b"hello, world\n" and files["README.md"].mode == "100644"
    assert files["remove-me.txt"].content is None
    assert files["docs/guide.md"].content == b"# Guide\n"
    assert files["run.sh"].mode == "100755" and files["run.sh"].content == b"#!/bin/sh\necho run\n"
    assert files["tool"].mode == "100755"
    assert files["GUIDE.md"].mode == "120000" and files["GUIDE.md"].content == b"docs/guide.md"
    assert "+hello, world" in changes.diff and "deleted file mode" in changes.diff


def test_ignored_files_are_left_out_but_tracked_ones_are_kept(run):
    private, ws, base = run
    (ws / "build").mkdir()
    (ws / "build" / "out.bin").write_bytes(b"\0" * 10)
    (ws / "debug.log").write_text("noise\n")
    (ws / "kept.txt").write_text("kept\n")
    (ws / ".gitignore").write_text("build/\n*.log\nsrc/\n")  # src/ is tracked: ignoring it changes nothing

    changes = private.changes(base, private.snapshot(ws, base))

    assert set(by_path(changes)) == {"kept.txt", ".gitignore"}


def test_commits_the_agent_made_count_as_changes(run):
    private, ws, base = run
    (ws / "committed.txt").write_text("agent committed this\n")
    git(ws, "add", "committed.txt")
    git(ws, "commit", "-qm", "agent")
    (ws / "uncommitted.txt").write_text("and left this\n")

    assert set(by_path(private.changes(base, private.snapshot(ws, base)))) == {"committed.txt", "uncommitted.txt"}


def test_no_changes_is_empty(run):
    private, ws, base = run
    changes = private.changes(base, private.snapshot(ws, base))
    assert changes.empty and changes.diff == ""


def test_large_binaries_and_nested_repositories_are_refused_with_a_list(run):
    private, ws, base = run
    (ws / "model.bin").write_bytes(b"\0\1" * 600_000)
    (ws / "small.png").write_bytes(b"\x89PNG\0" * 10)
    nested = ws / "vendor" / "lib"
    nested.mkdir(parents=True)
    git(nested, "init", "-q")
    (nested / "x.txt").write_text("x")

    with pytest.raises(ChangesRefused) as refused:
        private.changes(base, private.snapshot(ws, base))

    assert {path for path, _ in refused.value.problems} == {"model.bin", "vendor/lib"}
    assert "model.bin" in str(refused.value) and "1.2 MB binary" in str(refused.value)


def test_a_file_over_the_limit_is_refused_without_being_read_into_the_repo(run):
    private, ws, base = run
    (ws / "huge.txt").write_text("a" * 2000)

    with pytest.raises(ChangesRefused, match="huge.txt"):
        private.snapshot(ws, base, max_file_bytes=1000)


def test_names_git_refuses_are_listed_instead_of_failing_the_commit(run):
    private, ws, base = run
    (ws / ".Git").mkdir()
    (ws / ".Git" / "config").write_text("[core]\n")
    (ws / "docs").mkdir()
    (ws / "docs" / "GIT~1").write_text("x\n")
    (ws / "fine.txt").write_text("fine\n")

    with pytest.raises(ChangesRefused) as refused:
        private.snapshot(ws, base)

    assert [path for path, _ in refused.value.problems] == [".Git/config", "docs/GIT~1"]
    assert str(refused.value).startswith("These files cannot be committed:\n- `.Git/config`: has a name git refuses")


def test_symlinks_are_committed_as_links_and_never_followed(run, tmp_path):
    private, ws, base = run
    secret = tmp_path / "worker-secret.txt"
    secret.write_text("the worker's secret\n")
    os.symlink(secret, ws / "looks-innocent.txt")
    os.symlink(tmp_path, ws / "outside")

    changes = private.changes(base, private.snapshot(ws, base))

    files = by_path(changes)
    assert set(files) == {"looks-innocent.txt", "outside"}
    assert files["looks-innocent.txt"].mode == "120000" and files["looks-innocent.txt"].content == bytes(secret)
    assert b"the worker's secret" not in b"".join(f.content or b"" for f in changes.files)


def test_a_fifo_left_in_the_workspace_does_not_hang_the_snapshot(run):
    private, ws, base = run
    os.mkfifo(ws / "pipe")
    (ws / "real.txt").write_text("real\n")

    assert set(by_path(private.changes(base, private.snapshot(ws, base)))) == {"real.txt"}


def test_nothing_in_the_agents_git_runs_or_is_read(run, tmp_path):
    private, ws, base = run
    marker = tmp_path / "code-ran"
    other = tmp_path / "other-objects"
    other.mkdir()
    for key, value in [("core.fsmonitor", f"touch {marker}; false"), ("filter.evil.clean", f"touch {marker}; cat"),
                       ("filter.evil.smudge", f"touch {marker}; cat"), ("core.hooksPath", str(tmp_path)),
                       ("diff.evil.textconv", f"touch {marker}; cat"), ("include.path", str(tmp_path / "more"))]:
        git(ws, "config", key, value)
    (ws / ".git" / "objects" / "info" / "alternates").write_text(f"{other}\n")
    (ws / ".git" / "info" / "exclude").write_text("README.md\n")
    (ws / ".gitattributes").write_text("* filter=evil diff=evil\n")
    (ws / "README.md").write_text("changed\n")

    snapshot = private.snapshot(ws, base)
    changes = private.changes(base, snapshot)
    moved = private.rebase(snapshot, base)

    assert not marker.exists()
    assert by_path(changes)["README.md"].content == b"changed\n", "filters and the agent's excludes do not apply"
    assert private.changes(base, moved).files == changes.files
    assert not (private.path / "objects" / "info" / "alternates").exists()


def test_changes_replay_onto_a_moved_base_when_they_apply(run, origin, tmp_path):
    private, ws, base = run
    moved_base(origin, tmp_path, "src/app.py", "a = 10\nb = 2\nc = 3\n")
    (ws / "src" / "app.py").write_text("a = 1\nb = 2\nc = 30\n")
    snapshot = private.snapshot(ws, base)
    new_base = private.fetch(f"file://{origin}", "main", None)

    rebased = private.rebase(snapshot, new_base)

    assert by_path(private.changes(new_base, rebased))["src/app.py"].content == b"a = 10\nb = 2\nc = 30\n"
    assert git(ws, "rev-parse", "HEAD") == base, "the agent's workspace is not touched"


def test_conflicting_changes_are_reported(run, origin, tmp_path):
    private, ws, base = run
    moved_base(origin, tmp_path, "README.md", "upstream wording\n")
    (ws / "README.md").write_text("agent wording\n")
    snapshot = private.snapshot(ws, base)
    new_base = private.fetch(f"file://{origin}", "main", None)

    with pytest.raises(RebaseConflict):
        private.rebase(snapshot, new_base)


def test_a_patch_made_elsewhere_becomes_the_snapshot(run, origin, tmp_path):
    private, ws, base = run
    (ws / "README.md").write_text("patched\n")
    (ws / "bin.dat").write_bytes(b"\0\1\2")
    git(ws, "add", "-A")
    patch = subprocess.run(["git", "diff", "--cached", "--binary"], cwd=ws, capture_output=True, check=True).stdout

    changes = private.changes(base, private.apply_patch(base, patch))

    assert {f.path: f.content for f in changes.files} == {"README.md": b"patched\n", "bin.dat": b"\0\1\2"}
    with pytest.raises(GitError):
        private.apply_patch(base, b"diff --git a/.git/config b/.git/config\n--- a/.git/config\n+++ b/.git/config\n")


def test_a_repo_given_a_relative_path_works_from_the_callers_directory(origin, tmp_path, monkeypatch):
    # `draftsmith serve` keeps its workspaces under a relative `.draftsmith/`, while git runs in the repo's home
    monkeypatch.chdir(tmp_path)
    private = PrivateRepo.create(Path("work") / "git")
    base = private.fetch(f"file://{origin}", "main", None)
    patch = b"--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-hello\n+patched\n"

    changes = private.changes(base, private.apply_patch(base, patch))

    assert [f.content for f in changes.files] == [b"patched\n"]
    assert (tmp_path / "work" / "git" / "HEAD").is_file()


def test_a_url_with_credentials_is_refused(tmp_path):
    private = PrivateRepo.create(tmp_path / "git")
    with pytest.raises(ValueError):
        private.fetch("https://x-access-token:ghs_abcdefghijklmnopqrstuv@example.com/o/r.git", "main", None)


def test_a_token_fetch_leaves_the_token_nowhere_on_disk(fakehub, tmp_path):
    url = fakehub.create_repo("octo", "demo", {"README.md": "demo\n"})
    token = fakehub.installation_token("octo/demo")
    private = PrivateRepo.create(tmp_path / "run" / "git")

    sha = private.fetch(url, "main", token)
    private.populate_workspace(tmp_path / "run" / "ws", "main", url)

    assert len(sha) == 40 and (tmp_path / "run" / "ws" / "README.md").read_text() == "demo\n"
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), f"token stored in {path}"
    fetched = [r for r in fakehub.state.requests if r.actor == "git" and r.status == 200]
    assert fetched and all(r.token == token for r in fetched), "sent with every request, no 401 challenge needed"


def test_a_wrong_token_fails_without_echoing_it(fakehub, tmp_path):
    url = fakehub.create_repo("octo", "private-demo", {"README.md": "x\n"}, private=True)
    bad = "ghs_" + "W" * 36

    with pytest.raises(GitError) as failed:
        PrivateRepo.create(tmp_path / "git").fetch(url, "main", bad)

    assert bad not in str(failed.value)
