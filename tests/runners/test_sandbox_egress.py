"""Under bubblewrap the only way out is the run's egress proxy, through the relay; loopback servers only."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.egress.policy import EgressPolicy
from app.egress.proxy import EgressProxy
from app.engines.sandbox import Egress, Forward
from tests.runners.conftest import run_script

# Python inside the sandbox is the system's; HTTP_PROXY is honoured only where NO_PROXY does not exempt
# the loopback host, so "via the proxy" probes drop NO_PROXY.
VIA_PROXY = "env -u NO_PROXY -u no_proxy"
FETCH = """python3 -c '
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())
except urllib.error.HTTPError as error:
    print("status", error.code)
except Exception as error:
    print("failed", type(error).__name__, error)
' """


class Server:
    """A loopback HTTP(S) server on the host answering every GET with `body`."""

    def __init__(self, body: str, tls: ssl.SSLContext | None = None) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    started: list[Server] = []

    def start(body: str, tls: ssl.SSLContext | None = None) -> Server:
        started.append(Server(body, tls))
        return started[-1]

    yield start
    for server in started:
        server.close()


@pytest.fixture
def egress(tmp_path):
    """Start the run's real EgressProxy allowing `allow` (operator entries); returns (Egress, proxy)."""
    proxies: list[EgressProxy] = []

    def start(*allow: str, forwards: list[Forward] | None = None) -> tuple[Egress, EgressProxy]:
        directory = tmp_path / f"egress-{len(proxies)}"
        directory.mkdir(mode=0o700)
        # A unique name, so a test can look for this run's relay among the host's processes.
        socket_path = directory / f"proxy-{uuid.uuid4().hex[:8]}.sock"
        proxy = EgressProxy(socket_path, EgressPolicy(operator_entries=allow))
        proxy.start()
        proxies.append(proxy)
        return Egress(socket_path=socket_path, forwards=forwards or []), proxy

    yield start
    for proxy in proxies:
        proxy.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- plain HTTP ----------------------------------------------------------------------------------------


def test_an_allowed_loopback_server_answers_through_the_proxy_variables(bwrap, tmp_path, servers, egress):
    allowed = servers("hello from the allowed server")
    spec_egress, _ = egress(f"127.0.0.1:{allowed.port}")
    url = f"http://127.0.0.1:{allowed.port}/"
    curl = f"{VIA_PROXY} curl -sS {url}; echo" if shutil.which("curl") else f"echo {allowed.port}"

    ran = run_script(bwrap, tmp_path, f"echo $HTTP_PROXY $HTTPS_PROXY $NO_PROXY; {VIA_PROXY} {FETCH} {url}; {curl}",
                     egress=spec_egress)

    assert ran.stdout[0] == "http://127.0.0.1:3128 http://127.0.0.1:3128 localhost,127.0.0.1,::1"
    assert ran.stdout[1] == "hello from the allowed server"
    if shutil.which("curl"):
        assert ran.stdout[2] == "hello from the allowed server", ran.stderr


def test_an_allowed_loopback_server_answers_through_a_forward_at_the_same_url(bwrap, tmp_path, servers, egress):
    allowed = servers("hello through the forward")
    port = allowed.port
    spec_egress, _ = egress(f"127.0.0.1:{port}", forwards=[Forward(port, "127.0.0.1", port)])

    ran = run_script(bwrap, tmp_path, f"{FETCH} http://127.0.0.1:{port}/; {FETCH} http://localhost:{port}/",
                     egress=spec_egress)

    assert ran.stdout == ["hello through the forward"] * 2, ran.stderr


def test_a_server_not_allowed_is_refused_and_the_hosts_loopback_stays_out_of_reach(bwrap, tmp_path, servers, egress):
    # Given an allowed server with no forward, and a server the policy does not allow, forwarded anyway
    allowed, other = servers("allowed"), servers("SECRET from a server not allowed")
    spec_egress, proxy = egress(f"127.0.0.1:{allowed.port}", forwards=[Forward(other.port, "127.0.0.1", other.port)])
    direct = (f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {allowed.port}), timeout=3)'"
              " 2>&1 | tail -1")

    # When the command asks through the proxy, through the forward, and directly
    ran = run_script(bwrap, tmp_path, f"{VIA_PROXY} {FETCH} http://127.0.0.1:{other.port}/;"
                                      f" {FETCH} http://127.0.0.1:{other.port}/; {direct}", egress=spec_egress)

    # Then the proxy says 403, the forward closes without an answer, and there is no direct path
    assert ran.stdout[0] == "status 403"
    assert ran.stdout[1].startswith("failed RemoteDisconnected")
    assert ran.stdout[2] == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert "SECRET" not in "\n".join(ran.stdout + ran.stderr)
    assert [(b.host, b.port, b.count) for b in proxy.blocked()] == [("127.0.0.1", other.port, 2)]


# -- the relay is invisible to the command -------------------------------------------------------------


@pytest.mark.parametrize("script, code", [("exit 0", 0), ("exit 42", 42), ("kill -TERM $$", 128 + 15),
                                          ("kill -KILL $$", 128 + 9), ("yes | head -1 >/dev/null; exit 3", 3)])
def test_exit_codes_and_signals_pass_through_the_relay_unchanged(bwrap, tmp_path, egress, script, code):
    spec_egress, _ = egress()

    without = run_script(bwrap, tmp_path, script)
    through = run_script(bwrap, tmp_path, script, egress=spec_egress)

    assert without.result.exit_code == through.result.exit_code == code
    assert without.lines == through.lines == []


def test_the_command_sees_no_trace_of_the_relay_in_its_output_signals_or_children(bwrap, tmp_path, egress):
    spec_egress, _ = egress(forwards=[Forward(free_port(), "127.0.0.1", 9)])
    script = "grep -E '^(SigIgn|SigBlk)' /proc/self/status; echo out; echo err >&2"
    # The relay's own process: sandbox init (bwrap, PID 1) carries the same words in its command line.
    relay_parent = "; ps -o ppid= -p $(pgrep -f '^[^ ]*python[.0-9]* -I -S') | tr -d ' '; echo $$"

    without = run_script(bwrap, tmp_path, script)
    through = run_script(bwrap, tmp_path, script + relay_parent, egress=spec_egress)

    assert through.stdout[:3] == without.stdout  # same ignored and blocked signals, same output
    assert through.stderr == without.stderr == ["err"]
    parent, command = through.stdout[3:]
    assert (parent, command) == ("1", "2"), "the relay is the sandbox init's child, not the command's"


def test_every_listener_is_bound_before_the_command_starts(bwrap, tmp_path, egress):
    port = free_port()
    spec_egress, _ = egress(forwards=[Forward(port, "127.0.0.1", 9)])
    connect = "import socket; [socket.create_connection(('127.0.0.1', p), timeout=2).close() for p in (3128, {})]"

    ran = run_script(bwrap, tmp_path, f'python3 -c "{connect.format(port)}" && echo connected', egress=spec_egress)

    assert ran.stdout == ["connected"], ran.stderr


def test_the_relay_ends_with_the_sandbox_on_timeout(bwrap, tmp_path, egress):
    spec_egress, _ = egress()
    marker = spec_egress.socket_path.name

    ran = run_script(bwrap, tmp_path, "trap '' TERM; sleep 30", egress=spec_egress, timeout_s=1)

    assert ran.result.timed_out and ran.result.duration_s < 6
    time.sleep(0.2)
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 1, "the relay outlived its run"


# -- TLS with an operator CA ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory):
    """A CA and a certificate it signed for localhost and 127.0.0.1: (ca_pem, server TLS context)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Draftsmith test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])).issuer_name(ca_name)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory = tmp_path_factory.mktemp("tls")
    (directory / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (directory / "leaf.key").write_bytes(leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "leaf.pem", directory / "leaf.key")
    return ca.public_bytes(serialization.Encoding.PEM).decode(), context


NODE_GET = """/usr/bin/node -e '
require("https").get(process.argv[1], res => { res.on("data", d => process.stdout.write(d)); res.on("end", () => console.log()); })
  .on("error", e => console.log("failed", e.code))' """


@pytest.mark.parametrize("trusted", [True, False], ids=["with-the-extra-ca", "without-it"])
def test_https_to_an_allowed_server_verifies_against_the_operators_extra_ca(bwrap, tmp_path, servers, egress, test_ca,
                                                                             trusted):
    ca_pem, server_tls = test_ca
    port = servers("hello over verified TLS", tls=server_tls).port
    spec_egress, _ = egress(f"127.0.0.1:{port}", forwards=[Forward(port, "127.0.0.1", port)])
    node = f"{NODE_GET} https://127.0.0.1:{port}/" if shutil.which("node") else "echo no node"

    ran = run_script(bwrap, tmp_path, f"{VIA_PROXY} {FETCH} https://localhost:{port}/; {FETCH} https://127.0.0.1:{port}/;"
                                      f" {node}", egress=spec_egress, extra_ca_pem=ca_pem if trusted else None)

    python_proxy, python_forward, node_forward = ran.stdout
    if trusted:
        assert python_proxy == python_forward == "hello over verified TLS", ran.stderr
        assert node_forward in ("hello over verified TLS", "no node")
    else:
        assert "CERTIFICATE_VERIFY_FAILED" in python_proxy and "CERTIFICATE_VERIFY_FAILED" in python_forward
        assert node_forward.startswith("failed") or node_forward == "no node"
