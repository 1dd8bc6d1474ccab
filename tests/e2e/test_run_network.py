"""An agent reaches only what its run's egress proxy allows; the rest is refused, logged and listed for people."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from app.engines.sandbox.bubblewrap import find_bwrap
from app.engines.sandbox.local import NOT_ISOLATED
from tests.e2e.conftest import REPO, Scene, command_config
from tests.support.databases import _fresh_postgres_url

pytestmark = pytest.mark.skipif(find_bwrap() is None, reason="bubblewrap (apt: bubblewrap) is not installed")

# Runs inside the sandbox: tries each target directly and through HTTP_PROXY, and says what answered.
PROBE = r'''
import json, os, socket
proxy = os.environ["HTTP_PROXY"].rsplit(":", 1)

def talk(sock, payload):
    sock.sendall(payload.encode())
    return sock.recv(200).decode(errors="replace").splitlines()[0] if payload else "connected"

def direct(host, port, payload):
    try:
        with socket.create_connection((host, port), timeout=3) as sock:
            return "answered " + talk(sock, payload)
    except OSError as exc:
        return f"refused ({type(exc).__name__})"

def via_proxy(host, port, payload):
    try:
        with socket.create_connection(("127.0.0.1", int(proxy[1])), timeout=3) as sock:
            sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
            status = head.split(b"\r\n", 1)[0].decode()
            if " 200 " not in status + " ":
                return "refused " + status
            return "answered " + talk(sock, payload)
    except OSError as exc:
        return f"refused ({type(exc).__name__})"

targets = json.load(open("targets.json"))
for name, host, port, payload, try_direct in targets["connect"]:
    if try_direct:
        print(f"{name} direct: {direct(host, port, payload)}")
    print(f"{name} proxy: {via_proxy(host, port, payload)}")
for name, path in targets["paths"]:
    print(f"{name} path: {'answered: visible' if os.path.exists(path) else 'refused: absent'}")
'''


class AllowedServer(ThreadingHTTPServer):
    """The one host the operator allows: a loopback HTTP server that says so."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                body = b"allowed-ok\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def allowed_server():
    server = AllowedServer()
    yield server
    server.shutdown()
    server.server_close()


def _port(url: str) -> int:
    return urlsplit(url).port


def test_an_agent_reaches_only_the_allowed_host_and_everyone_sees_what_was_blocked(
        fakehub, make_draftsmith, postgres_server, allowed_server, redis_url):
    # Given the operator allows one loopback test host, the app keeps its database on PostgreSQL, and the
    # proxy's resolver maps a public-looking name to 127.0.0.1
    app = make_draftsmith(fakehub.env(), database_url=_fresh_postgres_url(postgres_server),
                          DRAFTSMITH_EGRESS_ALLOW=f"127.0.0.1:{allowed_server.port}")
    fakehub.webhook_url = app.webhook_url
    app.runtime.egress_resolver = lambda host, port: (
        ["127.0.0.1"] if host == "public-looking.example" else [info[4][0] for info in socket.getaddrinfo(host, port)])
    scene = Scene(fakehub, app)
    # The embedded PostgreSQL listens on a unix socket only: its directory must not be visible inside.
    pg_socket = f"{postgres_server.get_postmaster_info().socket_dir}/.s.PGSQL.{postgres_server.get_postmaster_info().port}"
    redis_port = _port(redis_url)
    password = urlsplit(redis_url).password or ""
    http = f"GET / HTTP/1.0\r\nHost: x\r\n\r\n"
    connect = [
        ("redis", "127.0.0.1", redis_port, "PING\r\n", True),
        ("redis-auth", "127.0.0.1", redis_port, f"AUTH {password}\r\nPING\r\n", True),
        ("web", "127.0.0.1", app.port, http, True),
        ("github", "127.0.0.1", _port(fakehub.api_url), http, True),
        ("postgres", "127.0.0.1", 5432, "", True),
        ("rebinding", "public-looking.example", _port(fakehub.api_url), http, False),
        ("allowed", "127.0.0.1", allowed_server.port, http, True),
    ]
    targets = {"connect": connect, "paths": [("postgres-socket", pg_socket)]}
    scene.repo(command_config("python3 probe.py > network-report.txt",
                              network={"allow": [f"public-looking.example:{_port(fakehub.api_url)}"]}),
               files={"probe.py": PROBE, "targets.json": json.dumps(targets)})
    number = fakehub.open_issue(REPO, "Check what the sandbox can reach")

    # When the agent runs
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    # Then only the allowed host answered, directly (a forward) and through the proxy
    assert task.status == "succeeded", task.status_reason
    report = subprocess.run(["git", "--git-dir", fakehub.repo(REPO).git_dir, "show", f"{task.branch}:network-report.txt"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    outcomes = dict(line.split(": ", 1) for line in report)
    assert outcomes.pop("allowed direct").startswith("answered HTTP/1.0 200")
    assert outcomes.pop("allowed proxy").startswith("answered HTTP/1.0 200")
    assert all(outcome.startswith("refused") for outcome in outcomes.values()), "\n".join(report)
    assert "403" in outcomes["redis proxy"] and "403" in outcomes["rebinding proxy"]

    # And the run's log, the progress comment and the check run name each blocked host
    [run] = scene.runs(task.id)
    log = [line.text for line in scene.logs(run.id)]
    [progress] = scene.bot_comments(number)
    check = scene.check_run()
    blocked = [f"127.0.0.1:{redis_port}", f"127.0.0.1:{app.port}", f"127.0.0.1:{_port(fakehub.api_url)}",
               "127.0.0.1:5432", f"public-looking.example:{_port(fakehub.api_url)}"]
    for where in blocked:
        assert any(line.startswith(f"network: blocked {where}") for line in log), where
        assert f"`{where}`" in progress.body and f"`{where}`" in check.output["summary"]
    assert f"`127.0.0.1:{redis_port}` ×2" in progress.body, "both Redis attempts counted"
    assert "loopback" in progress.body and "own services" in progress.body
    assert f"127.0.0.1:{allowed_server.port}" not in progress.body.split("Blocked network access", 1)[1]
    assert password not in progress.body + "\n".join(log)


def test_an_unisolated_run_says_so_in_its_log_and_check_run(fakehub, make_draftsmith):
    app = make_draftsmith(fakehub.env(), DRAFTSMITH_SANDBOX="unsafe-local")
    fakehub.webhook_url = app.webhook_url
    scene = Scene(fakehub, app)
    scene.repo(command_config("sed -i 's/tpyo/typo/' README.md"))
    number = fakehub.open_issue(REPO, "Fix typo in README")

    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    [run] = scene.runs(task.id)
    assert NOT_ISOLATED in [line.text for line in scene.logs(run.id)]
    check = scene.check_run()
    assert "**Not isolated**" in check.output["summary"] and "unsafe-local" in check.output["summary"]
    [progress] = scene.bot_comments(number)
    assert "**Not isolated**" in progress.body


def test_a_malformed_network_allow_entry_gets_a_comment_naming_its_line_and_the_rest_apply(fakehub, make_draftsmith):
    app = make_draftsmith(fakehub.env())
    fakehub.webhook_url = app.webhook_url
    app.runtime.egress_resolver = lambda host, port: []  # offline: every name resolves to nothing
    scene = Scene(fakehub, app)
    # Through the proxy, an allowed name that does not resolve is a 502; a name not allowed is a 403.
    probe = ("for h in pypi.org other.example; do curl -s -o /dev/null -w \"$h %{http_code}\\n\" "
             "-x $HTTP_PROXY http://$h/ >> status.txt; done")
    scene.repo(command_config(probe) + 'network:\n  allow:\n    - pypi.org\n    - "https://bad.example/simple"\n')
    number = fakehub.open_issue(REPO, "Check the network")

    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()

    [error_comment] = [c for c in scene.bot_comments(number) if "draftsmith.yml" in c.body and "line 6" in c.body]
    assert "network.allow" in error_comment.body and "bad.example" in error_comment.body
    assert task.status == "succeeded", task.status_reason
    status = subprocess.run(["git", "--git-dir", fakehub.repo(REPO).git_dir, "show", f"{task.branch}:status.txt"],
                            capture_output=True, text=True, check=True).stdout
    assert status.split("\n")[:2] == ["pypi.org 502", "other.example 403"], "the good entry still applies"
