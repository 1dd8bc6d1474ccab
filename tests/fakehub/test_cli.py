"""`draftsmith fakehub` writes the four GITHUB_* settings and serves a fake our app can authenticate against."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from importlib import metadata

import httpx
import jwt
import pytest
from packaging.requirements import Requirement

from app.settings import load_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fakehub_command_writes_settings_and_serves_until_interrupted(tmp_path, fakehub_spec):
    port = free_port()
    env_file = tmp_path / ".env"
    env_file.write_text("DRAFTSMITH_PORT=3000\n")
    process = subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", "fakehub", "--port", str(port), "--env-file", str(env_file),
         "--webhook-url", "http://127.0.0.1:9/hooks", "--repo", "octo/demo"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/_fakehub/app", timeout=1)
                break
            except httpx.HTTPError:
                assert process.poll() is None and time.monotonic() < deadline, "fakehub did not start"
                time.sleep(0.1)
        settings = load_settings(env_file)
        assert settings.port == 3000  # lines it does not own are kept
        assert settings.github_api_url == f"http://127.0.0.1:{port}"
        assert oct(settings.github_private_key_path.stat().st_mode & 0o777) == "0o600"
        now = int(time.time())
        token = jwt.encode({"iat": now - 30, "exp": now + 300, "iss": str(settings.github_app_id)},
                           settings.private_key_pem(), algorithm="RS256")
        answer = httpx.get(f"{settings.github_api_url}/repos/octo/demo/installation",
                           headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        assert settings.github_client_id and settings.github_client_secret  # the dashboard can sign people in
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    assert "GITHUB_WEBHOOK_SECRET" in output and str(env_file) in output
    assert settings.github_webhook_secret.get_secret_value() not in output
    assert settings.github_client_secret.get_secret_value() not in output


# Run as `draftsmith fakehub` would be where the extra is missing: None in sys.modules is Python's own
# way to make an import fail (ModuleNotFoundError), exactly as when the package was never installed.
WITHOUT = "import sys; sys.modules[{name!r}] = None; sys.argv = ['draftsmith', 'fakehub']; from app.cli import main; main()"


@pytest.mark.parametrize("package, shown", [("dulwich", "dulwich"), ("openapi_core", "openapi-core")])
def test_fakehub_without_the_extra_says_how_to_install_it(tmp_path, package, shown):
    ran = subprocess.run([sys.executable, "-c", WITHOUT.format(name=package)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)

    assert ran.returncode == 2
    assert f"({shown} is not installed)" in ran.stderr and "pip install 'draftsmith[fakehub]'" in ran.stderr
    assert "Traceback" not in ran.stderr and list(tmp_path.iterdir()) == []  # nothing written, nothing served


def test_the_app_requires_neither_of_the_fakes_packages_but_the_extra_does():
    requirements = [Requirement(line) for line in metadata.requires("draftsmith")]
    fake_only = {"dulwich", "openapi-core"}

    assert not [r.name for r in requirements if r.name in fake_only and r.marker is None]
    assert {r.name for r in requirements if r.marker and r.marker.evaluate({"extra": "fakehub"})} >= fake_only
