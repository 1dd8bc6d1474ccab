"""The sandbox's own /etc: generated per run, so nothing of the host's configuration or secrets shows."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.engines.sandbox.base import SANDBOX_HOME, WORKSPACE_MOUNT

# Inside the sandbox, at the path OpenSSL, curl and git look for by default on Debian.
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Each runtime reads its own variable; all point at the one bundle (Node adds it to its built-in roots).
CA_ENV_NAMES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO")
# Host files shown as they are, relative to /etc: the dynamic loader's cache and config, Debian's
# alternatives symlinks, the time zone, and public tables (getaddrinfo with a service name reads services).
HOST_FILES = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "mime.types",
    "services", "protocols",
)
# Where distributions keep the system's trusted roots, most common first.
_HOST_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
)


def ca_bundle(extra_ca_pem: str | None) -> str:
    """The host's trusted roots plus the operator's extra CA, as one PEM bundle."""
    host = next((Path(p).read_text() for p in _HOST_BUNDLES if Path(p).is_file()), "")
    parts = [host.rstrip("\n")] if host else []
    if extra_ca_pem:
        parts.append(extra_ca_pem.strip("\n"))
    return "\n".join(parts) + "\n"


def ca_env(bundle: str = CA_BUNDLE) -> dict[str, str]:
    return dict.fromkeys(CA_ENV_NAMES, bundle)


def generated_files(uid: int, gid: int, extra_ca_pem: str | None) -> dict[str, str]:
    """Contents of the generated files, keyed by their path relative to /etc."""
    users = {0: "root:x:0:0:root:/root:/usr/sbin/nologin",
             65534: "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"}
    users[uid] = f"sandbox:x:{uid}:{gid}:sandbox:{SANDBOX_HOME}:/bin/sh"
    groups = {0: "root:x:0:", 65534: "nogroup:x:65534:"}
    groups[gid] = f"sandbox:x:{gid}:"
    return {
        "passwd": "".join(line + "\n" for line in users.values()),
        "group": "".join(line + "\n" for line in groups.values()),
        "hostname": "sandbox\n",
        "hosts": "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost sandbox ip6-localhost ip6-loopback\n",
        # No DNS server is reachable (the egress proxy resolves names): a stray lookup must fail at once
        # (port unreachable on loopback) instead of waiting out the default 5 s x 2 attempts.
        "resolv.conf": "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\nnetworks: files\n"
                         "protocols: files\nservices: files\n",
        # A read-only (plan mode) workspace stays owned by the worker, not the run's uid; without this
        # git refuses it as "dubious ownership". The agent runs the repository's code anyway.
        "gitconfig": f"[safe]\n\tdirectory = {WORKSPACE_MOUNT}\n",
        CA_BUNDLE.removeprefix("/etc/"): ca_bundle(extra_ca_pem),
    }


def write_etc(directory: Path, *, uid: int, gid: int, extra_ca_pem: str | None) -> None:
    """Write the generated files under `directory`, laid out as they appear under /etc."""
    for relative, content in generated_files(uid, gid, extra_ca_pem).items():
        _write(directory / relative, content)


def write_ca_bundle(path: Path, extra_ca_pem: str | None) -> Path:
    """The bundle alone, for a sandbox that keeps its own /etc (a container image, unsafe-local)."""
    _write(path, ca_bundle(extra_ca_pem))
    return path


def _write(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    path.chmod(0o644)  # readable by the run's uid whatever the worker's umask


@contextmanager
def run_dir(workspace: Path) -> Iterator[Path]:
    """A private directory beside the workspace (never inside it) for one run's files, removed after."""
    path = Path(tempfile.mkdtemp(prefix=".sandbox-", dir=workspace.resolve().parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
