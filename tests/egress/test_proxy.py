"""The egress proxy over real sockets, loopback only.

Every refusal test hands the proxy a resolver mapping names to the addresses in question and a `connect`
seam that records calls, so nothing is ever sent to a link-local, private or public address.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.egress.policy import NETWORK_OFF, NOT_ALLOWED, EgressPolicy, Endpoint
from app.egress.proxy import (
    BadRequest,
    BlockedHost,
    EgressEvent,
    EgressProxy,
    ProxyRequest,
    origin_head,
    parse_request_head,
)

GREETING = b"hello from upstream"


# -- a loopback upstream -------------------------------------------------------------------------------


class Upstream:
    """A threaded loopback server; `handler(conn)` serves each connection. `ended` counts finished ones."""

    def __init__(self, handler: Callable[[Upstream, socket.socket], None], tls: ssl.SSLContext | None = None):
        self.handler, self.tls = handler, tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.ended = threading.Semaphore(0)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            if self.tls:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.handler(self, conn)
        except OSError:
            pass
        finally:
            conn.close()
            self.ended.release()

    def close(self) -> None:
        self.listener.close()


def answer_http(server: Upstream, conn: socket.socket) -> None:
    """HTTP/1.1 with keep-alive: record each head and body, answer GREETING, close when asked to."""
    stream = conn.makefile("rb")
    while True:
        head = b""
        while (line := stream.readline()) not in (b"\r\n", b""):
            head += line
        if not head:
            return
        server.heads.append(head)
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length")), 0)
        server.bodies.append(stream.read(length))
        close = b"connection: close" in head.lower()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s"
                     % (len(GREETING), b"Connection: close\r\n" if close else b"", GREETING))
        if close:
            return


def echo_after_eof(server: Upstream, conn: socket.socket) -> None:
    """Read until the client half-closes, then send it all back in upper case."""
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    conn.sendall(data.upper())


def hold_open(server: Upstream, conn: socket.socket) -> None:
    """Keep the connection until the other end closes it."""
    while conn.recv(65536):
        pass


# -- clients ------------------------------------------------------------------------------------------


def dial(path: Path) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(5)
    client.connect(str(path))
    return client


def read_head(sock: socket.socket) -> bytes:
    # Byte by byte, so nothing after the head (a TLS handshake, say) is swallowed.
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            break
        head += byte
    return head


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    head = read_head(sock).decode("latin-1")
    assert head, "the proxy closed without answering"
    status_line, *lines = head.rstrip("\r\n").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    body = b""
    while len(body) < int(headers.get("content-length", 0)):
        body += sock.recv(65536)
    return int(status_line.split()[1]), headers, body


def ask(path: Path, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with dial(path) as client:
        client.sendall(request)
        return read_response(client)


def tunnel(path: Path, authority: str) -> socket.socket:
    """A CONNECT tunnel, exactly as the sandbox relay's forward listeners open one."""
    client = dial(path)
    client.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    assert read_head(client) == b"HTTP/1.1 200 Connection established\r\n\r\n"
    return client


def http_get(sock: socket.socket, host: str, path: str = "/") -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    status, _, body = read_response(sock)
    assert status == 200
    return body


# -- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture
def socket_dir():
    # Short: a unix socket path must fit in 108 bytes, and pytest's tmp_path for a long test name won't.
    path = Path(tempfile.mkdtemp(prefix="egress-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def upstream():
    server = Upstream(answer_http)
    yield server
    server.close()


class Seams:
    """A resolver from a fixed map, and a `connect` that records every address before connecting."""

    def __init__(self, names: dict[str, list[str]] | None = None):
        self.names = names or {}
        self.resolved: list[str] = []
        self.connected: list[tuple[str, int]] = []

    def resolve(self, host: str, port: int) -> list[str]:
        self.resolved.append(host)
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.names[host]

    async def connect(self, ip: str, port: int):
        self.connected.append((ip, port))
        assert ipaddress.ip_address(ip).is_loopback, f"a test tried to reach {ip}"
        return await asyncio.open_connection(ip, port)


@pytest.fixture
def start_proxy(socket_dir):
    proxies: list[EgressProxy] = []

    def start(policy: EgressPolicy, seams: Seams | None = None, **options) -> EgressProxy:
        seams = seams or Seams()
        proxy = EgressProxy(socket_dir / f"egress-{len(proxies)}.sock", policy, resolve=seams.resolve,
                            connect=seams.connect, **options)
        proxy.start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()


# -- allowed traffic -----------------------------------------------------------------------------------


def test_a_connect_tunnel_to_an_operator_allowed_loopback_server_carries_http(start_proxy, upstream):
    proxy = start_proxy(EgressPolicy(operator_entries=(f"127.0.0.1:{upstream.port}",)))
    with tunnel(proxy.socket_path, f"127.0.0.1:{upstream.port}") as client:
        assert http_get(client, "upstream.test", "/one") == GREETING
        assert http_get(client, "upstream.test", "/two") == GREETING  # the tunnel stays up between requests
    assert [h.split(b"\r\n")[0] for h in upstream.heads] == [b"GET /one HTTP/1.1", b"GET /two HTTP/1.1"]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A test CA and a server certificate for upstream.test it signed: (CA PEM, server cert file, key file)."""
    now = datetime.datetime.now(datetime.UTC)

    def issue(subject, issuer, key, signer, *, ca: bool):
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("upstream.test")]), False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Draftsmith test CA")])
    ca = issue(ca_name, ca_name, ca_key, ca_key, ca=True)
    server = issue(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "upstream.test")]), ca_name, server_key,
                   ca_key, ca=False)
    directory = tmp_path_factory.mktemp("certs")
    (directory / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca.public_bytes(serialization.Encoding.PEM).decode(), directory / "server.pem", directory / "server.key"


@pytest.fixture
def tls_upstream(certificates):
    _, cert, key = certificates
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = Upstream(answer_http, tls=context)
    yield server
    server.close()


def test_the_default_resolver_and_connect_reach_a_name_the_operator_allowed_by_address(socket_dir, upstream):
    policy = EgressPolicy(operator_entries=(f"127.0.0.1:{upstream.port}",))
    with EgressProxy(socket_dir / "egress.sock", policy) as proxy:  # getaddrinfo and TCP, no seams
        with tunnel(proxy.socket_path, f"localhost:{upstream.port}") as client:
            assert http_get(client, "localhost") == GREETING


def test_tls_through_connect_verifies_the_upstream_certificate(start_proxy, tls_upstream, certificates):
    seams = Seams({"upstream.test": ["127.0.0.1"]})
    proxy = start_proxy(EgressPolicy(operator_entries=(f"127.0.0.1:{tls_upstream.port}",)), seams)
    context = ssl.create_default_context(cadata=certificates[0])
    with context.wrap_socket(tunnel(proxy.socket_path, f"upstream.test:{tls_upstream.port}"),
                             server_hostname="upstream.test") as client:
        assert http_get(client, "upstream.test") == GREETING
    assert seams.resolved == ["upstream.test"]  # resolved once; the proxy connected to the checked address
    assert seams.connected == [("127.0.0.1", tls_upstream.port)]


def test_an_absolute_form_request_reaches_the_upstream_in_origin_form_with_connection_close(start_proxy, upstream):
    proxy = start_proxy(EgressPolicy(operator_entries=(f"127.0.0.1:{upstream.port}",)))
    status, _, body = ask(proxy.socket_path, (
        f"POST http://127.0.0.1:{upstream.port}/simple/pkg?x=1#frag HTTP/1.1\r\n"
        "Host: something-else.example\r\nProxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\n"
        "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: 2\r\n"
        "Content-Length: 5\r\n\r\nhello"
    ).encode())
    assert (status, body) == (200, GREETING)
    assert upstream.heads == [
        f"POST /simple/pkg?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{upstream.port}\r\nX-Kept: 2\r\n"
        "Content-Length: 5\r\nConnection: close\r\n".encode()
    ]
    assert upstream.bodies == [b"hello"]


def test_a_real_client_works_through_a_tcp_relay_for_http_and_https(start_proxy, upstream, tls_upstream,
                                                                   certificates):
    # Given the relay the sandbox runs: TCP on loopback piped to the proxy's unix socket
    seams = Seams({"upstream.test": ["127.0.0.1"]})
    proxy = start_proxy(EgressPolicy(operator_entries=(f"127.0.0.1:{upstream.port}",
                                                       f"127.0.0.1:{tls_upstream.port}")), seams)
    relay = socket.create_server(("127.0.0.1", 0))

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with source, sink:
            while data := source.recv(65536):
                sink.sendall(data)

    def accept() -> None:
        while True:
            try:
                conn, _ = relay.accept()
            except OSError:
                return
            out = dial(proxy.socket_path)
            out.settimeout(None)
            threading.Thread(target=pipe, args=(conn, out), daemon=True).start()
            threading.Thread(target=pipe, args=(out.dup(), conn.dup()), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    # When httpx uses it as HTTP_PROXY / HTTPS_PROXY
    proxy_url = f"http://127.0.0.1:{relay.getsockname()[1]}"
    context = ssl.create_default_context(cadata=certificates[0])
    try:
        with httpx.Client(proxy=proxy_url, verify=context, trust_env=False, timeout=5) as client:
            plain = client.get(f"http://upstream.test:{upstream.port}/plain")
            secure = client.get(f"https://upstream.test:{tls_upstream.port}/secure")
            refused = client.get("http://not-listed.example/")
    finally:
        relay.close()
    # Then both kinds of request arrive, and a refusal reads as one
    assert (plain.status_code, plain.content) == (200, GREETING)
    assert (secure.status_code, secure.content) == (200, GREETING)
    assert refused.status_code == 403 and refused.headers["x-draftsmith-egress"] == "blocked"


def test_a_tunnel_passes_a_half_close_on_and_still_carries_the_answer(start_proxy):
    server = Upstream(echo_after_eof)
    proxy = start_proxy(EgressPolicy(operator_entries=(f"127.0.0.1:{server.port}",)))
    with tunnel(proxy.socket_path, f"127.0.0.1:{server.port}") as client:
        client.sendall(b"ping " * 30000)  # more than one read
        client.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    server.close()
    assert answer == b"PING " * 30000


def test_the_operator_set_model_endpoint_is_reachable_on_loopback(start_proxy, upstream):
    seams = Seams({"localhost": ["127.0.0.1"]})
    proxy = start_proxy(EgressPolicy(model_endpoints=(Endpoint("localhost", upstream.port, operator_set=True),)),
                        seams)
    with tunnel(proxy.socket_path, f"localhost:{upstream.port}") as client:
        assert http_get(client, "localhost") == GREETING


def test_network_off_leaves_only_the_model_endpoint(start_proxy, upstream):
    other = Upstream(answer_http)
    policy = EgressPolicy(
        model_endpoints=(Endpoint("127.0.0.1", upstream.port, operator_set=True),),
        operator_entries=(f"127.0.0.1:{other.port}",),
        repository_entries=("pypi.org",),
        network_off=True,
    )
    seams = Seams({"pypi.org": ["127.0.0.1"]})
    proxy = start_proxy(policy, seams)
    with tunnel(proxy.socket_path, f"127.0.0.1:{upstream.port}") as client:
        assert http_get(client, "model") == GREETING
    for authority in (f"127.0.0.1:{other.port}", "pypi.org:443"):
        status, headers, body = ask(proxy.socket_path, f"CONNECT {authority} HTTP/1.1\r\n\r\n".encode())
        assert status == 403 and NETWORK_OFF in body.decode()
    other.close()
    assert seams.connected == [("127.0.0.1", upstream.port)]
    assert seams.resolved == []


def test_only_the_addresses_that_pass_are_tried(start_proxy, upstream):
    seams = Seams({"mixed.test": ["169.254.169.254", "10.1.2.3", "127.0.0.1"]})
    proxy = start_proxy(EgressPolicy(operator_entries=(f"127.0.0.1:{upstream.port}",)), seams)
    with tunnel(proxy.socket_path, f"mixed.test:{upstream.port}") as client:
        assert http_get(client, "mixed.test") == GREETING
    assert seams.connected == [("127.0.0.1", upstream.port)]


def test_events_report_allowed_connections_with_the_address_used(start_proxy, upstream):
    events: list[EgressEvent] = []
    proxy = start_proxy(EgressPolicy(operator_entries=(f"127.0.0.1:{upstream.port}",)), on_event=events.append)
    with tunnel(proxy.socket_path, f"127.0.0.1:{upstream.port}"):
        pass
    ask(proxy.socket_path, b"CONNECT example.org:443 HTTP/1.1\r\n\r\n")
    assert events == [
        EgressEvent("127.0.0.1", upstream.port, True, f"allowed by operator entry '127.0.0.1:{upstream.port}'",
                    "127.0.0.1"),
        EgressEvent("example.org", 443, False, NOT_ALLOWED, None),
    ]


def test_a_failing_event_callback_does_not_break_connections(start_proxy, upstream):
    def broken(event: EgressEvent) -> None:
        raise RuntimeError("reporting is down")

    proxy = start_proxy(EgressPolicy(operator_entries=(f"127.0.0.1:{upstream.port}",)), on_event=broken)
    with tunnel(proxy.socket_path, f"127.0.0.1:{upstream.port}") as client:
        assert http_get(client, "upstream.test") == GREETING


# -- refusals ------------------------------------------------------------------------------------------


def test_a_name_not_in_network_allow_gets_a_403_with_the_line_to_add(start_proxy):
    seams = Seams({"example.org": ["127.0.0.1"]})
    proxy = start_proxy(EgressPolicy(repository_entries=("pypi.org",)), seams)
    status, headers, body = ask(proxy.socket_path, b"CONNECT example.org:8443 HTTP/1.1\r\n\r\n")
    assert status == 403
    assert headers["x-draftsmith-egress"] == "blocked"
    assert body.decode() == (
        "Draftsmith blocked egress to example.org:8443: not in network.allow\n"
        'To allow it, add to .github/draftsmith.yml on the default branch: network: {allow: ["example.org:8443"]}\n'
    )
    assert seams.resolved == [] and seams.connected == []  # refused by name: not even a DNS query


@pytest.mark.parametrize("entry", ["localhost", "127.0.0.1", "127.0.0.0/8"])
def test_a_repository_entry_for_loopback_is_refused(start_proxy, upstream, entry):
    seams = Seams({"localhost": ["127.0.0.1", "::1"]})
    proxy = start_proxy(EgressPolicy(repository_entries=(f"{entry}:{upstream.port}" if "/" not in entry else entry,)),
                        seams)
    host = "localhost" if entry == "localhost" else "127.0.0.1"
    status, headers, body = ask(proxy.socket_path, f"CONNECT {host}:{upstream.port} HTTP/1.1\r\n\r\n".encode())
    assert status == 403
    assert "is loopback (this machine); only the operator can allow it" in body.decode()
    assert "network.allow" not in body.decode()  # listing it again would not help, so no hint
    assert seams.connected == []


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("127.0.0.1", "is loopback"),
        ("169.254.169.254", "is link-local (cloud metadata); never reachable from a sandbox"),
        ("fe80::1", "is link-local"),
        ("10.1.2.3", "is in a private range"),
        ("192.168.1.1", "is in a private range"),
        ("::ffff:127.0.0.1", "127.0.0.1 is loopback"),
        ("::ffff:169.254.169.254", "169.254.169.254 is link-local"),
        ("0.0.0.0", "is unspecified"),
    ],
)
@pytest.mark.parametrize("form", ["connect", "absolute"])
def test_a_listed_name_resolving_to_a_local_address_is_refused_without_connecting(start_proxy, address, says, form):
    seams = Seams({"public-looking.example": [address]})
    proxy = start_proxy(EgressPolicy(repository_entries=("public-looking.example",)), seams)
    request = (b"CONNECT public-looking.example:443 HTTP/1.1\r\n\r\n" if form == "connect"
               else b"GET http://public-looking.example/ HTTP/1.1\r\nHost: public-looking.example\r\n\r\n")
    status, headers, body = ask(proxy.socket_path, request)
    assert status == 403 and headers["x-draftsmith-egress"] == "blocked"
    assert says in body.decode()
    assert seams.resolved == ["public-looking.example"]
    assert seams.connected == []


@pytest.mark.parametrize("address", ["169.254.169.254", "[fe80::1]", "10.1.2.3", "192.168.1.1", "[::ffff:127.0.0.1]"])
def test_a_literal_local_address_is_refused_without_connecting_even_with_a_repository_entry(start_proxy, address):
    seams = Seams()
    proxy = start_proxy(EgressPolicy(repository_entries=(f"{address}:443",)), seams)
    status, _, _ = ask(proxy.socket_path, f"CONNECT {address}:443 HTTP/1.1\r\n\r\n".encode())
    assert status == 403
    assert seams.resolved == [] and seams.connected == []


def test_the_apps_own_listening_address_is_refused_even_when_an_operator_entry_allows_it(start_proxy, upstream):
    seams = Seams()
    proxy = start_proxy(EgressPolicy(operator_entries=("127.0.0.0/8",),
                                     protected=frozenset({("127.0.0.1", upstream.port)})), seams)
    status, _, body = ask(proxy.socket_path, f"CONNECT 127.0.0.1:{upstream.port} HTTP/1.1\r\n\r\n".encode())
    assert status == 403
    assert f"127.0.0.1:{upstream.port} is one of Draftsmith's own services" in body.decode()
    assert seams.connected == []


def test_blocked_counts_repeats_in_the_order_first_seen(start_proxy):
    proxy = start_proxy(EgressPolicy(repository_entries=("pypi.org",)))
    for authority in ["example.org:443", "other.example:80", "EXAMPLE.org.:443", "example.org:443"]:
        ask(proxy.socket_path, f"CONNECT {authority} HTTP/1.1\r\n\r\n".encode())
    assert proxy.blocked() == [
        BlockedHost("example.org", 443, 3, NOT_ALLOWED),
        BlockedHost("other.example", 80, 1, NOT_ALLOWED),
    ]


# -- failures -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_head",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: pypi.org\r\n\r\n",  # origin-form: not a proxy request
        b"GET https://pypi.org/ HTTP/1.1\r\n\r\n",  # https must use CONNECT
        b"CONNECT pypi.org HTTP/1.1\r\n\r\n",  # no port
        b"CONNECT pypi.org:0 HTTP/1.1\r\n\r\n",
        b"CONNECT py_pi.org:443 HTTP/1.1\r\n\r\n",
        b"CONNECT user@pypi.org:443 HTTP/1.1\r\n\r\n",
        b"CONNECT pypi.org:443 HTTP/2.0\r\n\r\n",
        b"CONNECT  pypi.org:443 HTTP/1.1\r\n\r\n",
        b"GET http:/// HTTP/1.1\r\n\r\n",
        b"GET http://pypi.org/ HTTP/1.1\r\nBad Header: x\r\n\r\n",
        b"GET http://pypi.org/ HTTP/1.1\r\nX: a\nInjected: b\r\n\r\n",  # bare LF
        b"GET http://pypi.org/ HTTP/1.1\r\n folded: x\r\n\r\n",
    ],
)
def test_malformed_requests_get_a_400_and_reach_nothing(start_proxy, request_head):
    seams = Seams({"pypi.org": ["127.0.0.1"]})
    proxy = start_proxy(EgressPolicy(repository_entries=("pypi.org",), operator_entries=("127.0.0.0/8",)), seams)
    status, _, _ = ask(proxy.socket_path, request_head)
    assert status == 400
    assert seams.resolved == [] and seams.connected == []


def test_a_request_head_over_64_kib_is_refused(start_proxy):
    proxy = start_proxy(EgressPolicy())
    status, _, _ = ask(proxy.socket_path, b"GET http://pypi.org/ HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
    assert status == 431


def test_a_client_that_never_finishes_its_head_is_timed_out(start_proxy):
    proxy = start_proxy(EgressPolicy(), header_timeout=0.2)
    with dial(proxy.socket_path) as client:
        client.sendall(b"CONNECT pypi.org:443 HTTP/1.1\r\n")
        assert read_response(client)[0] == 408


def test_an_unreachable_upstream_gets_a_502(start_proxy):
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    events: list[EgressEvent] = []
    proxy = start_proxy(EgressPolicy(operator_entries=(f"127.0.0.1:{port}",), repository_entries=("nowhere.example",)),
                        on_event=events.append)
    assert ask(proxy.socket_path, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())[0] == 502
    assert ask(proxy.socket_path, b"CONNECT nowhere.example:443 HTTP/1.1\r\n\r\n")[0] == 502  # does not resolve
    assert [(e.allowed, "unreachable" in e.reason) for e in events] == [(True, True), (True, True)]
    assert proxy.blocked() == []


# -- lifecycle ------------------------------------------------------------------------------------------


def test_stop_ends_open_tunnels_promptly(start_proxy):
    server = Upstream(hold_open)
    proxy = start_proxy(EgressPolicy(operator_entries=(f"127.0.0.1:{server.port}",)))
    clients = [tunnel(proxy.socket_path, f"127.0.0.1:{server.port}") for _ in range(3)]
    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 1
    for client in clients:
        with client:
            try:
                assert client.recv(1) == b""
            except ConnectionResetError:
                pass
    for _ in clients:
        assert server.ended.acquire(timeout=2)  # the upstream side was closed too
    server.close()
    assert not proxy.socket_path.exists()


def test_connections_past_the_limit_get_a_503_and_the_open_ones_carry_on(start_proxy, upstream):
    proxy = start_proxy(EgressPolicy(operator_entries=(f"127.0.0.1:{upstream.port}",)), max_connections=2)
    first, second = (tunnel(proxy.socket_path, f"127.0.0.1:{upstream.port}") for _ in range(2))
    with dial(proxy.socket_path) as third:
        assert read_response(third)[0] == 503  # at once, before any request: the fd is given back straight away
    with first, second:
        assert http_get(first, "upstream.test") == http_get(second, "upstream.test") == GREETING


def test_the_socket_is_open_to_the_sandbox_uid(start_proxy):
    proxy = start_proxy(EgressPolicy())
    assert stat.S_IMODE(os.stat(proxy.socket_path).st_mode) == 0o666


def test_start_raises_in_the_caller_when_the_socket_cannot_be_bound(socket_dir):
    proxy = EgressProxy(socket_dir / "missing" / "egress.sock", EgressPolicy())
    with pytest.raises(OSError):
        proxy.start()
    proxy.stop()  # harmless after a failed start


async def test_the_proxy_runs_beside_the_callers_own_event_loop(start_proxy, upstream):
    proxy = start_proxy(EgressPolicy(operator_entries=(f"127.0.0.1:{upstream.port}",)))
    reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
    writer.write(f"CONNECT 127.0.0.1:{upstream.port} HTTP/1.1\r\n\r\n".encode())
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 200 Connection established\r\n\r\n"
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 OK")
    assert await reader.readexactly(len(GREETING)) == GREETING
    writer.close()


# -- request heads (pure) -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "parsed"),
    [
        (b"CONNECT PyPI.org.:443 HTTP/1.1\r\nHost: pypi.org:443\r\n\r\n",
         ProxyRequest("CONNECT", "pypi.org", 443, "PyPI.org.:443", "", "HTTP/1.1", (("Host", "pypi.org:443"),))),
        (b"CONNECT [::1]:8080 HTTP/1.1\r\n\r\n", ProxyRequest("CONNECT", "::1", 8080, "[::1]:8080", "", "HTTP/1.1")),
        (b"GET http://pypi.org HTTP/1.0\r\n\r\n", ProxyRequest("GET", "pypi.org", 80, "pypi.org", "/", "HTTP/1.0")),
        (b"GET HTTP://pypi.org:8080?q=1 HTTP/1.1\r\n\r\n",
         ProxyRequest("GET", "pypi.org", 8080, "pypi.org:8080", "/?q=1", "HTTP/1.1")),
        (b"DELETE http://10.0.0.1/a/b#c HTTP/1.1\r\nX:  spaced \r\n\r\n",
         ProxyRequest("DELETE", "10.0.0.1", 80, "10.0.0.1", "/a/b", "HTTP/1.1", (("X", "spaced"),))),
    ],
)
def test_request_heads_parse_to_host_port_and_origin_target(head, parsed):
    assert parse_request_head(head) == parsed


def test_a_head_without_its_blank_line_is_malformed():
    with pytest.raises(BadRequest):
        parse_request_head(b"CONNECT pypi.org:443 HTTP/1.1\r\n")


def test_the_upstream_head_drops_what_was_meant_for_the_proxy():
    request = parse_request_head(
        b"GET http://pypi.org/simple/ HTTP/1.1\r\nhost: evil.example\r\nProxy-Authorization: x\r\n"
        b"connection: Keep-Alive, X-Trace\r\nx-trace: 1\r\nAccept: */*\r\n\r\n"
    )
    assert origin_head(request) == (
        b"GET /simple/ HTTP/1.1\r\nHost: pypi.org\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
