"""Which hosts a sandboxed agent may reach (pure): network.allow entries and the two-stage egress decision.

Stage 1 (`EgressPolicy.check_host`) looks at the name the agent asked for, before anything is resolved.
Stage 2 (`EgressPolicy.check_address`) looks at each address that name resolved to, so that a listed name
pointing at loopback, a private range or the cloud metadata service is still refused.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

WEB_PORTS = frozenset({80, 443})
NOT_ALLOWED = "not in network.allow"
NETWORK_OFF = "network: off in .github/draftsmith.yml; only the model API is reachable"
_NEVER = "never reachable from a sandbox"

_LOOPBACK_REFUSED = ("{addr} is loopback (this machine); only the operator can allow it, with an IP or CIDR entry "
                     "naming the address")
_PRIVATE_REFUSED = ("{addr} is in a private range; only the operator can allow it (a private range setting or an "
                    "IP or CIDR entry)")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_EXAMPLE = "for example 'pypi.org', '*.npmjs.org' or 'registry.example.org:8443'"


def _net(text: str) -> IPNetwork:
    return ipaddress.ip_network(text)


# Refused whatever anyone lists. Order matters only for the wording: the first match names the class.
_ALWAYS_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (_net(n), what)
    for n, what in [
        ("0.0.0.0/8", "unspecified (means this host)"),
        ("169.254.0.0/16", "link-local"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified (means this host)"),
        ("fe80::/10", "link-local"),
        ("ff00::/8", "multicast"),
        ("fec0::/10", "reserved (site-local)"),
    ]
)
_LOOPBACK = (_net("127.0.0.0/8"), _net("::1/128"))
# 198.18.0.0/15 is "benchmarking", but fake-IP DNS setups hand it out for real hosts on private networks.
_PRIVATE = tuple(
    _net(n) for n in ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "198.18.0.0/15", "fc00::/7"]
)
_IPV6_GLOBAL = _net("2000::/3")
_NAT64 = _net("64:ff9b::/96")
# Metadata services outside link-local too: AWS's IPv6 one is in fc00::/7, Alibaba's in 100.64.0.0/10,
# so unlocking private ranges must not unlock them.
_CLOUD_METADATA = frozenset(
    ipaddress.ip_address(a) for a in ["169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200"]
)


@dataclass(frozen=True)
class AllowEntry:
    """One parsed network.allow entry. `text` is its canonical spelling, used in reasons and hints.

    A name entry has `name` (a wildcard's `name` is the suffix after `*.`); an IP or CIDR entry has
    `network`. `ports` is None when any port is allowed (CIDRs).
    """

    text: str
    name: str | None = None
    wildcard: bool = False
    network: IPNetwork | None = None
    ports: frozenset[int] | None = WEB_PORTS

    def allows_port(self, port: int) -> bool:
        return self.ports is None or port in self.ports

    def matches_name(self, host: str, port: int) -> bool:
        """`host` must already be normalised (`normalise_host`)."""
        if self.name is None or not self.allows_port(port):
            return False
        return host.endswith("." + self.name) if self.wildcard else host == self.name

    def matches_address(self, address: IPAddress, port: int) -> bool:
        return self.network is not None and self.allows_port(port) and address in self.network


@dataclass(frozen=True)
class Endpoint:
    """The agent's model API: always reachable, even with `network: off`.

    `operator_set` marks a base URL the operator configured: such an endpoint may be on loopback or in a
    private range (a local model server); any other must resolve to a public address.
    """

    host: str
    port: int
    operator_set: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "host", normalise_host(self.host))

    @classmethod
    def from_url(cls, url: str, *, operator_set: bool = False) -> Endpoint:
        """The endpoint a model base URL such as `http://127.0.0.1:4000/v1` talks to."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return cls(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), operator_set)


@dataclass(frozen=True)
class Decision:
    """Whether a connection may go ahead. `rule` names what allowed it (None when refused)."""

    allowed: bool
    reason: str
    rule: str | None = None


@dataclass(frozen=True)
class _Grant:
    rule: str
    unlocks_local: bool  # an operator's own choice may reach loopback and private ranges


@dataclass(frozen=True)
class EgressPolicy:
    """Everything one run's proxy decides with. Entries may be given as strings (parsed here).

    `protected` holds the app's own listening (ip, port) pairs; an unspecified ip (`0.0.0.0`, `::`)
    protects that port on every address, because a service bound there answers on all of them.
    `private_allowed` unlocks private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, 198.18/15, fc00::/7)
    for any allowed name; it never unlocks loopback, link-local or the cloud metadata addresses.
    """

    model_endpoints: tuple[Endpoint, ...] = ()
    repository_entries: tuple[AllowEntry, ...] = ()
    operator_entries: tuple[AllowEntry, ...] = ()
    network_off: bool = False
    protected: frozenset[tuple[str, int]] = frozenset()
    private_allowed: tuple[IPNetwork, ...] = ()

    def __post_init__(self) -> None:
        def entries(items) -> tuple[AllowEntry, ...]:
            return tuple(e if isinstance(e, AllowEntry) else parse_allow_entry(e) for e in items)

        set_ = object.__setattr__
        set_(self, "model_endpoints", tuple(self.model_endpoints))
        set_(self, "repository_entries", entries(self.repository_entries))
        set_(self, "operator_entries", entries(self.operator_entries))
        set_(self, "protected", frozenset((str(_normal_address(ip)), int(port)) for ip, port in self.protected))
        set_(self, "private_allowed", tuple(ipaddress.ip_network(n) for n in self.private_allowed))

    def check_host(self, host: str, port: int) -> Decision:
        """Stage 1, before resolving: is (host, port) covered by a model endpoint or an entry?

        A name no name entry covers still passes, provisionally, when an operator IP or CIDR entry allows
        the port: `check_address` then decides on what it resolves to. Repository IP entries match only
        requests for that literal address: resolving any name the agent makes up would let it leak data
        through DNS queries, and that is the operator's call, not a repository's.
        """
        try:
            host = normalise_host(host)
        except ValueError as exc:
            return Decision(False, str(exc))
        literal = ip_literal(host)
        grants = self._grants(host, port, literal)
        if grants:
            return Decision(True, f"allowed by {grants[0].rule}", grants[0].rule)
        by_address = any(e.network is not None and e.allows_port(port) for e in self.operator_entries)
        if literal is None and not self.network_off and by_address:
            return Decision(True, "allowed for now: an IP or CIDR entry may cover the address it resolves to")
        if literal is not None and not self.network_off and (local := self._local_refusal(literal, port)):
            return Decision(False, local)  # say why listing it would not help either
        return Decision(False, NETWORK_OFF if self.network_off else NOT_ALLOWED)

    def _local_refusal(self, addr: IPAddress, port: int) -> str | None:
        """Why a repository could never allow this address (loopback, private, always refused), or None."""
        addr = _normal_address(addr)
        if refusal := self._always_refused(addr, port):
            return refusal
        if any(addr in net for net in _LOOPBACK):
            return _LOOPBACK_REFUSED.format(addr=addr)
        if any(addr in net for net in _PRIVATE) and not any(addr in net for net in self.private_allowed):
            return _PRIVATE_REFUSED.format(addr=addr)
        return None

    def check_address(self, host: str, port: int, address: str) -> Decision:
        """Stage 2, for each address `host` resolved to (or the literal itself): may we connect to it?"""
        try:
            host = normalise_host(host)
            addr = _normal_address(address)
        except ValueError as exc:
            return Decision(False, str(exc))
        refusal = self._always_refused(addr, port)
        if refusal:
            return Decision(False, refusal)
        grants = self._grants(host, port, addr)
        if not grants:
            return Decision(False, NETWORK_OFF if self.network_off else NOT_ALLOWED)
        unlocking = next((g for g in grants if g.unlocks_local), None)
        if any(addr in net for net in _LOOPBACK):
            if unlocking is None:
                return Decision(False, _LOOPBACK_REFUSED.format(addr=addr))
            return Decision(True, f"allowed by {unlocking.rule}", unlocking.rule)
        if any(addr in net for net in _PRIVATE):
            if unlocking is not None:
                return Decision(True, f"allowed by {unlocking.rule}", unlocking.rule)
            unlocked = next((net for net in self.private_allowed if addr in net), None)
            if unlocked is None:
                return Decision(False, _PRIVATE_REFUSED.format(addr=addr))
            return Decision(True, f"allowed by {grants[0].rule} (private range {unlocked} is allowed)",
                            grants[0].rule)
        return Decision(True, f"allowed by {grants[0].rule}", grants[0].rule)

    def _grants(self, host: str, port: int, address: IPAddress | None) -> list[_Grant]:
        """What covers (host, port), and, given `address`, (address, port): model endpoints first."""
        grants = [
            _Grant(f"model endpoint {authority(e.host, e.port)}", e.operator_set)
            for e in self.model_endpoints
            if e.port == port and e.host == host
        ]
        if self.network_off:
            return grants
        for source, entries in (("operator", self.operator_entries), ("repository", self.repository_entries)):
            for entry in entries:
                by_name = entry.matches_name(host, port)
                by_address = (address is not None and entry.matches_address(address, port)
                              and (source == "operator" or host == str(address)))
                if by_name or by_address:
                    # An operator's name entry does not unlock loopback: only naming the address itself does.
                    grants.append(_Grant(f"{source} entry '{entry.text}'", source == "operator" and by_address))
        return grants

    def _always_refused(self, addr: IPAddress, port: int) -> str | None:
        what = _always_refused_class(addr)
        if what is not None:
            metadata = " (cloud metadata)" if addr in _CLOUD_METADATA else ""
            return f"{addr} is {what}{metadata}; {_NEVER}"
        if addr in _CLOUD_METADATA:
            return f"{addr} is a cloud metadata address; {_NEVER}"
        for ip, protected_port in self.protected:
            if protected_port == port and (ip == str(addr) or ip in ("0.0.0.0", "::")):
                return f"{authority(str(addr), port)} is one of Draftsmith's own services; {_NEVER}"
        return None


def _always_refused_class(addr: IPAddress) -> str | None:
    for net, what in _ALWAYS_REFUSED:
        if addr in net:
            return what
    if isinstance(addr, ipaddress.IPv6Address):
        # NAT64 and 6to4 carry an IPv4 address inside; a gateway would deliver to it. Refused outright
        # when that one is local: an operator who wants a local address names it in its own form.
        if addr in _NAT64:
            embedded = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        else:
            embedded = addr.sixtofour
        if embedded is not None:
            inner = _always_refused_class(embedded)
            if inner is None and any(embedded in net for net in _LOOPBACK):
                inner = "loopback"
            if inner is None and any(embedded in net for net in _PRIVATE):
                inner = "private"
            if inner is not None:
                return f"an IPv6 form of {embedded}, which is {inner}"
        # Outside 2000::/3 only loopback and unique-local (fc00::/7) are in use; the rest is not routable.
        if addr not in _IPV6_GLOBAL and addr not in _LOOPBACK[1] and not any(addr in net for net in _PRIVATE):
            return "reserved"
    return None


def _normal_address(address: str | IPAddress) -> IPAddress:
    """An IP address, with IPv4-mapped IPv6 (`::ffff:127.0.0.1`) turned back into the IPv4 it is."""
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"{address!r} is not an IP address") from None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id:
            raise ValueError(f"{address!r}: IPv6 zone ids are not allowed")
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
    return addr


def ip_literal(host: str) -> IPAddress | None:
    """The address `host` spells (brackets allowed), normalised, or None for a name."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return _normal_address(host)
    except ValueError:
        return None


def normalise_host(host: str) -> str:
    """A DNS name in lower case without its trailing dot (IDNs in punycode), or an IP literal, canonical.

    Raises ValueError, naming what is wrong, for anything else.
    """
    bracketed = host.startswith("[") and host.endswith("]")
    literal = ip_literal(host)
    if literal is not None:
        if bracketed and literal.version == 4 and ":" not in host:
            raise ValueError(f"{host!r}: brackets are for IPv6 addresses only")
        return str(literal)
    if bracketed or "%" in host:
        raise ValueError(f"{host!r} is not a valid IPv6 address")
    name = host.lower().removesuffix(".")
    if not name:
        raise ValueError(f"{host!r} is not a host name")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"{host!r} is not a valid international domain name") from None
    if len(name) > 253:
        raise ValueError(f"{host!r} is longer than the 253 characters a DNS name may have")
    labels = name.split(".")
    for label in labels:
        if not label:
            raise ValueError(f"{host!r} has an empty label (two dots in a row, or a leading dot)")
        if not _LABEL.fullmatch(label):
            raise ValueError(f"{host!r}: {label!r} is not a valid DNS label "
                             "(letters, digits and inner hyphens, at most 63 characters)")
    if labels[-1].isdigit():
        raise ValueError(f"{host!r} is neither a valid IP address nor a host name")
    return name


def split_host_port(authority: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address -> (host, port or None)."""
    if authority.startswith("["):
        inside, bracket, rest = authority[1:].partition("]")
        if not bracket:
            raise ValueError(f"{authority!r} is missing the closing ']'")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{authority!r}: expected ':port' after ']'")
        return "[" + inside + "]", _port(rest[1:], authority) if rest else None
    if authority.count(":") >= 2:
        if "%" in authority:
            raise ValueError(f"{authority!r}: IPv6 zone ids ('%...') are not allowed")
        if ip_literal(authority) is None:
            raise ValueError(f"{authority!r}: an IPv6 address with a port needs brackets, as in '[::1]:8080'")
        return authority, None
    host, colon, port = authority.partition(":")
    return host, _port(port, authority) if colon else None


def _port(text: str, where: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise ValueError(f"{where!r}: the port must be a number from 1 to 65535")
    return int(text)


def authority(host: str, port: int | None = None) -> str:
    """`host:port` as people write it: IPv6 hosts in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def parse_allow_entry(text: str) -> AllowEntry:
    """Parse one `network.allow` entry (repository config or operator setting).

    Forms: `host` and `*.suffix` (ports 80 and 443), `host:port`, `*.suffix:port`, IP literals
    (`10.0.0.5`, `10.0.0.5:8080`, `::1`, `[::1]:8080`), CIDRs (`10.0.0.0/8`, any port), and
    `https://host[:port]` / `http://host[:port]` (the scheme sets the port). Raises ValueError with a
    message a repository maintainer can act on.
    """
    if not isinstance(text, str):
        raise ValueError(f"network.allow entries are strings; got {text!r}")
    entry = text.strip()
    if not entry:
        raise ValueError(f"an empty network.allow entry allows nothing; remove it or name a host, {_EXAMPLE}")
    if any(c.isspace() for c in entry):
        raise ValueError(f"{entry!r} contains whitespace; write one host per entry, {_EXAMPLE}")
    if "@" in entry:
        # Don't echo the entry: the part before '@' may be a password.
        raise ValueError("a network.allow entry contains '@': entries name hosts and must not carry credentials")
    for mark in "?#":
        if mark in entry:
            raise ValueError(f"{entry!r}: entries name hosts, not URLs; drop '{mark}{entry.partition(mark)[2]}'")

    ports = WEB_PORTS
    scheme, sep, authority = entry.partition("://")
    if sep:
        if scheme.lower() not in ("http", "https"):
            raise ValueError(f"{entry!r}: only http:// and https:// are understood; or write the host alone")
        ports = frozenset({443 if scheme.lower() == "https" else 80})
        authority, slash, path = authority.partition("/")
        if path:
            raise ValueError(f"{entry!r}: entries name hosts, not URLs; drop the path '/{path}'")
    elif "/" in entry:
        return _parse_cidr(entry)
    else:
        authority = entry

    if not authority:
        raise ValueError(f"{entry!r} names no host; {_EXAMPLE}")
    if authority == "*" or authority.startswith("*:"):
        raise ValueError(f"{entry!r} would allow every host; list the hosts the agent needs, {_EXAMPLE}")
    host, port = split_host_port(authority)
    if port is not None:
        ports = frozenset({port})
    wildcard = host.startswith("*.")
    if wildcard:
        host = host[2:]
        if not host:
            raise ValueError(f"{entry!r} names no domain after '*.'; write one, as in '*.npmjs.org'")
    if "*" in host:
        raise ValueError(f"{entry!r}: a wildcard may only be a leading '*.', as in '*.npmjs.org'")
    literal = ip_literal(host)
    name = normalise_host(host)  # raises with the reason the host is not valid
    if literal is not None:
        if wildcard:
            raise ValueError(f"{entry!r}: a wildcard needs a domain, not an IP address; for a range write a CIDR "
                             "such as '10.0.0.0/8'")
        return AllowEntry(_entry_text(name, ports), network=ipaddress.ip_network(literal), ports=ports)
    if wildcard and "." not in name:
        raise ValueError(f"{entry!r} covers a whole top-level domain; name the site's domain, as in '*.npmjs.org'")
    return AllowEntry(_entry_text(("*." if wildcard else "") + name, ports), name=name, wildcard=wildcard,
                      ports=ports)


def _parse_cidr(entry: str) -> AllowEntry:
    address, _, prefix = entry.partition("/")
    if ip_literal(address) is None:
        raise ValueError(f"{entry!r}: entries name hosts, not URLs; drop the path '/{entry.partition('/')[2]}'")
    if ":" in prefix:
        raise ValueError(f"{entry!r}: a CIDR entry covers every port; drop the port")
    try:
        network = ipaddress.ip_network(entry, strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            suggestion = ipaddress.ip_network(entry, strict=False)
            raise ValueError(f"{entry!r} has host bits set; did you mean '{suggestion}'?") from None
        raise ValueError(f"{entry!r} is not a valid CIDR (an address, '/' and a prefix length)") from None
    if network.prefixlen == 0:
        raise ValueError(f"{entry!r} would allow every address; list the ranges the agent needs")
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
        # ::ffff:10.0.0.0/104 style: say it the way the decision will compare it.
        raise ValueError(f"{entry!r}: write IPv4 ranges in IPv4 form, such as '10.0.0.0/8'")
    return AllowEntry(str(network), network=network, ports=None)


def _entry_text(host: str, ports: frozenset[int]) -> str:
    return authority(host, None) if ports == WEB_PORTS else authority(host, next(iter(ports)))


def allow_entry(host: str, port: int) -> str:
    """The `network.allow` entry for (host, port): the bare host for web ports."""
    try:
        host = normalise_host(host)
    except ValueError:
        host = host.lower()
    return authority(host, None if port in WEB_PORTS else port)


def allow_hint(host: str, port: int) -> str:
    """The `.github/draftsmith.yml` line that would allow (host, port), e.g. `network: {allow: ["pypi.org"]}`."""
    return f'network: {{allow: ["{allow_entry(host, port)}"]}}'
