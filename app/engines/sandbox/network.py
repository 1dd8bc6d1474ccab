"""A run's network: the egress policy it gets, the proxy that enforces it, and what that proxy refused."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from app.agents.base import BASE_URL_VARS
from app.egress.policy import NOT_ALLOWED, EgressPolicy, Endpoint, allow_entry, authority
from app.egress.proxy import EgressEvent, EgressProxy
from app.github.render import Blocked
from app.engines.sandbox import Egress, Forward

# The public API each provider key is for; an operator's base URL (stored with the key) comes on top.
PROVIDER_APIS = {
    "ANTHROPIC_API_KEY": "https://api.anthropic.com",
    "OPENAI_API_KEY": "https://api.openai.com",
    "GEMINI_API_KEY": "https://generativelanguage.googleapis.com",
    "OPENROUTER_API_KEY": "https://openrouter.ai",
}
# Inside the sandbox a forward listener binds the model endpoint's own port as the run's uid.
_UNPRIVILEGED_PORTS = 1024


def model_endpoints(required_keys: list[str], credentials: dict[str, str]) -> list[Endpoint]:
    """The agent's model API: its providers' public APIs, and any base URL the operator stored."""
    endpoints = [Endpoint.from_url(PROVIDER_APIS[key]) for key in required_keys if key in PROVIDER_APIS]
    for name in BASE_URL_VARS:
        if credentials.get(name):
            endpoints.append(Endpoint.from_url(credentials[name], operator_set=True))
    return endpoints


def protected_addresses(settings, redis_url: str | None) -> frozenset[tuple[str, int]]:
    """The app's own listening addresses (web, Redis, database): never reachable, whatever anyone allows."""
    listening = [(settings.host, settings.port)]
    for url in (redis_url, settings.database_url):
        parts = urlsplit(url or "")
        if parts.hostname and parts.port:
            listening.append((parts.hostname, parts.port))
    return frozenset((address, port) for host, port in listening for address in _addresses(host))


def _addresses(host: str) -> set[str]:
    """Every address `host` names; 0.0.0.0 and :: stay as they are (the policy reads them as 'all')."""
    if host in ("0.0.0.0", "::"):
        return {host}
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    except OSError:
        return set()


def build_policy(settings, network, endpoints: list[Endpoint], redis_url: str | None) -> EgressPolicy:
    """The run's policy from the operator's settings and the repository's `network:` (RepoConfig.network)."""
    return EgressPolicy(
        model_endpoints=tuple(endpoints),
        repository_entries=tuple(network.allow),
        operator_entries=tuple(settings.egress_allow_entries),
        network_off=not network.enabled,
        protected=protected_addresses(settings, redis_url),
        private_allowed=tuple(settings.egress_private_networks),
    )


# sun_path holds 108 bytes with its terminating NUL; keep a margin.
MAX_SOCKET_PATH = 100


class RunNetwork:
    """The proxy of one run, on a socket in its own directory (bound into the run's sandboxes, nothing else).

    Refusals go to `log` as they happen; `blocked()` sums them up for the run's summary.
    """

    def __init__(self, directory: Path, policy: EgressPolicy, log: Callable[[str], None], *, resolve=None) -> None:
        self._scratch = None
        if len(os.fsencode(directory / "proxy.sock")) > MAX_SOCKET_PATH:
            # A unix socket's path must fit in 108 bytes: a deep data dir gets a short private one instead.
            self._scratch = directory = Path(tempfile.mkdtemp(prefix="draftsmith-egress-"))
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)  # the sandbox hands it to the run's uid; nobody else on the host uses the proxy
        self.policy = policy
        self._log = log
        self._reached: set[str] = set()
        self.proxy = EgressProxy(directory / "proxy.sock", policy, resolve=resolve, on_event=self._event)

    def __enter__(self) -> RunNetwork:
        self.proxy.start()
        return self

    def __exit__(self, *exc) -> None:
        self.proxy.stop()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    @property
    def egress(self) -> Egress:
        """What the sandbox needs: the socket, and a forward for each loopback address the run may reach.

        Inside, NO_PROXY covers loopback, so `http://127.0.0.1:PORT` (a local model server, a registry
        mirror the operator allows) must answer on the sandbox's own loopback: the forward does.
        """
        forwards = [Forward(e.port, e.host, e.port) for e in self.policy.model_endpoints
                    if e.operator_set and _is_loopback_name(e.host)]
        for entry in self.policy.operator_entries:
            if entry.network is not None and entry.network.num_addresses == 1 and entry.network.is_loopback:
                host = str(entry.network.network_address)
                forwards += [Forward(port, host, port) for port in sorted(entry.ports or ())]
        unique = {f.listen_port: f for f in forwards if f.listen_port >= _UNPRIVILEGED_PORTS}
        return Egress(socket_path=self.proxy.socket_path, forwards=list(unique.values()))

    def _event(self, event: EgressEvent) -> None:
        where = authority(event.host, event.port)
        if not event.allowed:
            self._log(f"network: blocked {where}: {event.reason}")
        elif where not in self._reached:  # once per host: what the run used, without a line per request
            self._reached.add(where)
            self._log(f"network: connected to {where}")

    def blocked(self) -> list[Blocked]:
        """For the run's summary; an entry to suggest only where listing the host would allow it."""
        return [Blocked(authority(b.host, b.port), b.count, b.reason,
                        allow_entry(b.host, b.port) if b.reason == NOT_ALLOWED else None)
                for b in self.proxy.blocked()]


def _is_loopback_name(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")

