"""Inside bubblewrap, as the run's uid, an agent finds a readable /etc of its own and can work with git."""

from __future__ import annotations

import subprocess
import time

import pytest

from app.engines.sandbox.etc import HOST_FILES, generated_files
from tests.runners.conftest import run_script

GIT_IDENTITY = {"GIT_AUTHOR_NAME": "Agent", "GIT_AUTHOR_EMAIL": "agent@example.org",
                "GIT_COMMITTER_NAME": "Agent", "GIT_COMMITTER_EMAIL": "agent@example.org"}


def run(sandbox, workspace, script: str, **fields) -> tuple[int | None, list[str], list[str]]:
    ran = run_script(sandbox, workspace, script, **fields)
    return ran.result.exit_code, ran.stdout, ran.stderr


@pytest.fixture
def clone(tmp_path):
    """A workspace that is a git clone, made with plain git as the worker would."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git = ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.org", "-C", str(origin)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    (origin / "README.md").write_text("# Demo\n")
    (origin / "src.py").write_text("print('hi')\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    workspace = tmp_path / "run-1" / "workspace"
    workspace.parent.mkdir()
    subprocess.run(["git", "clone", "-q", str(origin), str(workspace)], check=True)
    return workspace


def test_git_status_mv_and_commit_work_in_a_cloned_workspace(bwrap, clone):
    script = """
        git status --short && echo status-ok
        git mv src.py main.py && echo mv-ok
        git ls-files | grep -v README | xargs rm && echo rm-ok
        git commit -qam 'Rename and remove' && echo commit-ok
        git log --format=%s -1
    """

    code, out, err = run(bwrap, clone, script, env=GIT_IDENTITY)

    assert code == 0, err
    assert out == ["status-ok", "mv-ok", "rm-ok", "commit-ok", "Rename and remove"]
    assert not (clone / "main.py").exists() and not (clone / "src.py").exists()
    # The workspace now belongs to the run's uid, hence safe.directory for the worker's own git.
    log = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(clone), "log", "--format=%s", "-1"],
                         capture_output=True, text=True)
    assert log.stdout.strip() == "Rename and remove"


def test_git_reads_a_read_only_workspace_the_run_does_not_own(bwrap, clone):
    code, out, err = run(bwrap, clone, "git status --short; git log --format=%s", workspace_readonly=True)

    assert code == 0, err
    assert out == ["init"]


def test_etc_is_readable_names_the_sandbox_user_and_holds_no_host_secrets(bwrap, tmp_path):
    script = """
        id -un; stat -c '%a %U' /etc; getent passwd sandbox | cut -d: -f6,7
        ls -A /etc; ls -A /etc/ssl /etc/ssl/certs
        cat /etc/shadow /etc/gshadow /etc/sudoers /etc/ssh/ssh_config /root/.gitconfig 2>&1 >/dev/null | wc -l
        touch /etc/new 2>/dev/null || echo etc-read-only
        cat /etc/hostname; hostname
    """

    code, out, err = run(bwrap, tmp_path, script)

    assert out[:3] == ["sandbox", "755 root", "/home/sandbox:/bin/sh"]
    expected = {*(name.split("/")[0] for name in generated_files(1, 1, None)), *HOST_FILES}
    listed = set(out[3:out.index("/etc/ssl:")])
    assert listed == expected
    assert out[out.index("/etc/ssl:") + 1:out.index("/etc/ssl:") + 2] == ["certs"]
    assert out[-4:] == ["5", "etc-read-only", "sandbox", "sandbox"]


def test_a_stray_name_lookup_fails_at_once_instead_of_hanging(bwrap, tmp_path):
    probe = "python3 -c 'import socket; socket.getaddrinfo(\"pypi.org\", 443)'"

    started = time.monotonic()
    code, out, err = run(bwrap, tmp_path, probe)

    assert code != 0 and any("gaierror" in line for line in err)
    assert time.monotonic() - started < 3
    code, out, _ = run(bwrap, tmp_path, "getent hosts localhost sandbox | wc -l")
    assert out == ["2"]


def test_the_ca_bundle_holds_the_hosts_roots_and_the_operators_extra_ca(bwrap, tmp_path):
    extra = "-----BEGIN CERTIFICATE-----\nMIIBdraftsmithOPERATORca\n-----END CERTIFICATE-----\n"
    script = "for v in SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE NODE_EXTRA_CA_CERTS GIT_SSL_CAINFO;" \
             " do printenv $v; done; grep -c 'BEGIN CERTIFICATE' $SSL_CERT_FILE; tail -2 $SSL_CERT_FILE | head -1"
    host_roots = open("/etc/ssl/certs/ca-certificates.crt").read().count("BEGIN CERTIFICATE")

    code, out, err = run(bwrap, tmp_path, script, extra_ca_pem=extra)

    assert out[:5] == ["/etc/ssl/certs/ca-certificates.crt"] * 5
    assert out[5:] == [str(host_roots + 1), "MIIBdraftsmithOPERATORca"]


def test_generated_files_stay_outside_the_workspace_and_are_removed_after_the_run(bwrap, clone):
    before = sorted(p.name for p in clone.parent.iterdir())

    code, out, _ = run(bwrap, clone, "git status --porcelain --ignored | wc -l")

    assert out == ["0"]
    assert sorted(p.name for p in clone.parent.iterdir()) == before
