"""`draftsmith fakehub` writes the four GITHUB_* settings and serves a fake our app can authenticate against."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import jwt

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
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    assert "GITHUB_WEBHOOK_SECRET" in output and str(env_file) in output
    assert settings.github_webhook_secret.get_secret_value() not in output
