"""The egress policy: parsing network.allow entries, and which (host, port, address) a sandbox may reach."""

from __future__ import annotations

import ipaddress

import pytest

from app.egress.policy import (
    NETWORK_OFF,
    NOT_ALLOWED,
    AllowEntry,
    Decision,
    EgressPolicy,
    Endpoint,
    allow_hint,
    ip_literal,
    normalise_host,
    parse_allow_entry,
    split_host_port,
)

MODEL = Endpoint("api.anthropic.com", 443)
LOCAL_MODEL = Endpoint("127.0.0.1", 4000, operator_set=True)
PUBLIC = "203.0.113.7"  # documentation range: only ever handed to the policy, never connected to


def decide(policy: EgressPolicy, host: str, port: int, address: str) -> Decision:
    """Both stages, as the proxy runs them: the name first, then the address it resolved to."""
    first = policy.check_host(host, port)
    return first if not first.allowed else policy.check_address(host, port, address)


# -- parsing entries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "text_out", "name", "wildcard", "network", "ports"),
    [
        ("pypi.org", "pypi.org", "pypi.org", False, None, {80, 443}),
        ("PyPI.Org", "pypi.org", "pypi.org", False, None, {80, 443}),
        ("pypi.org.", "pypi.org", "pypi.org", False, None, {80, 443}),
        ("  pypi.org  ", "pypi.org", "pypi.org", False, None, {80, 443}),  # YAML leaves stray spaces
        ("localhost", "localhost", "localhost", False, None, {80, 443}),
        ("*.npmjs.org", "*.npmjs.org", "npmjs.org", True, None, {80, 443}),
        ("*.NPMJS.org.", "*.npmjs.org", "npmjs.org", True, None, {80, 443}),
        ("registry.example.org:8443", "registry.example.org:8443", "registry.example.org", False, None, {8443}),
        ("*.example.org:8080", "*.example.org:8080", "example.org", True, None, {8080}),
        ("pypi.org:443", "pypi.org:443", "pypi.org", False, None, {443}),
        ("https://pypi.org", "pypi.org:443", "pypi.org", False, None, {443}),
        ("https://pypi.org/", "pypi.org:443", "pypi.org", False, None, {443}),
        ("HTTPS://PyPI.org/", "pypi.org:443", "pypi.org", False, None, {443}),
        ("http://pypi.org", "pypi.org:80", "pypi.org", False, None, {80}),
        ("https://pypi.org:8443", "pypi.org:8443", "pypi.org", False, None, {8443}),
        ("http://[::1]:8080/", "[::1]:8080", None, False, "::1/128", {8080}),
        ("https://*.npmjs.org", "*.npmjs.org:443", "npmjs.org", True, None, {443}),
        ("bücher.de", "xn--bcher-kva.de", "xn--bcher-kva.de", False, None, {80, 443}),
        ("xn--bcher-kva.de", "xn--bcher-kva.de", "xn--bcher-kva.de", False, None, {80, 443}),
        ("a-b.c-d.example", "a-b.c-d.example", "a-b.c-d.example", False, None, {80, 443}),
        ("10.0.0.5", "10.0.0.5", None, False, "10.0.0.5/32", {80, 443}),
        ("10.0.0.5:8080", "10.0.0.5:8080", None, False, "10.0.0.5/32", {8080}),
        ("::1", "[::1]", None, False, "::1/128", {80, 443}),
        ("[::1]", "[::1]", None, False, "::1/128", {80, 443}),
        ("[::1]:8080", "[::1]:8080", None, False, "::1/128", {8080}),
        ("2001:DB8::1", "[2001:db8::1]", None, False, "2001:db8::1/128", {80, 443}),
        ("::ffff:10.0.0.5", "10.0.0.5", None, False, "10.0.0.5/32", {80, 443}),  # said the way it is compared
        ("10.0.0.0/8", "10.0.0.0/8", None, False, "10.0.0.0/8", None),
        ("192.168.1.7/32", "192.168.1.7/32", None, False, "192.168.1.7/32", None),
        ("fd00::/8", "fd00::/8", None, False, "fd00::/8", None),
    ],
)
def test_allow_entries_parse_to_their_canonical_form(text, text_out, name, wildcard, network, ports):
    entry = parse_allow_entry(text)
    assert entry == AllowEntry(
        text_out,
        name=name,
        wildcard=wildcard,
        network=ipaddress.ip_network(network) if network else None,
        ports=frozenset(ports) if ports is not None else None,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty network.allow entry"),
        ("   ", "empty network.allow entry"),
        ("pypi .org", "contains whitespace"),
        ("pypi.org\tnpmjs.org", "contains whitespace"),
        ("*", "would allow every host"),
        ("*:443", "would allow every host"),
        ("https://*", "would allow every host"),
        ("*.", "names no domain after '*.'"),
        ("*.org", "covers a whole top-level domain"),
        ("*.localhost", "covers a whole top-level domain"),
        ("*npmjs.org", "a wildcard may only be a leading '*.'"),
        ("registry.*.org", "a wildcard may only be a leading '*.'"),
        ("*.*.npmjs.org", "a wildcard may only be a leading '*.'"),
        ("npmjs.*", "a wildcard may only be a leading '*.'"),
        ("**.npmjs.org", "a wildcard may only be a leading '*.'"),
        ("*.10.0.0.1", "a wildcard needs a domain, not an IP address"),
        ("pypi.org/simple", "drop the path '/simple'"),
        ("https://pypi.org/simple/", "drop the path '/simple/'"),
        ("pypi.org?page=2", "drop '?page=2'"),
        ("https://pypi.org/#top", "drop '#top'"),
        ("user@pypi.org", "must not carry credentials"),
        ("https://token:x-oauth@github.com", "must not carry credentials"),
        ("ftp://pypi.org", "only http:// and https:// are understood"),
        ("https://", "names no host"),
        ("pypi.org:", "the port must be a number from 1 to 65535"),
        ("pypi.org:0", "the port must be a number from 1 to 65535"),
        ("pypi.org:65536", "the port must be a number from 1 to 65535"),
        ("pypi.org:https", "the port must be a number from 1 to 65535"),
        ("pypi.org:-1", "the port must be a number from 1 to 65535"),
        ("pypi.org:８０", "the port must be a number from 1 to 65535"),  # full-width digits
        ("pypi.org:80:81", "needs brackets"),
        ("[::1]8080", "expected ':port' after ']'"),
        ("[::1", "missing the closing ']'"),
        ("[::1]:", "the port must be a number from 1 to 65535"),
        ("[10.0.0.1]", "brackets are for IPv6 addresses only"),
        ("[pypi.org]", "is not a valid IPv6 address"),
        ("fe80::1%eth0", "zone ids"),
        ("-pypi.org", "is not a valid DNS label"),
        ("pypi-.org", "is not a valid DNS label"),
        ("py_pi.org", "is not a valid DNS label"),
        ("py!pi.org", "is not a valid DNS label"),
        ("a" * 64 + ".org", "is not a valid DNS label"),
        (".".join(["a" * 60] * 5), "longer than the 253 characters"),
        ("pypi..org", "has an empty label"),
        (".pypi.org", "has an empty label"),
        ("pypi.org..", "has an empty label"),
        ("10.0.0.256", "neither a valid IP address nor a host name"),
        ("1.2.3", "neither a valid IP address nor a host name"),
        ("10.0.0.1/8", "has host bits set; did you mean '10.0.0.0/8'?"),
        ("10.0.0.0/33", "is not a valid CIDR"),
        ("10.0.0.0/x", "is not a valid CIDR"),
        ("10.0.0.0/8:5432", "a CIDR entry covers every port"),
        ("0.0.0.0/0", "would allow every address"),
        ("::/0", "would allow every address"),
        ("::ffff:0:0/96", "write IPv4 ranges in IPv4 form"),
    ],
)
def test_malformed_entries_are_refused_with_a_message_a_maintainer_can_act_on(text, message):
    with pytest.raises(ValueError) as caught:
        parse_allow_entry(text)
    assert message in str(caught.value)


def test_a_credential_in_an_entry_is_not_repeated_in_the_error():
    with pytest.raises(ValueError) as caught:
        parse_allow_entry("https://x-access-token:ghs_secret@github.com")
    assert "ghs_secret" not in str(caught.value)


@pytest.mark.parametrize("value", [None, 443, ["pypi.org"], {"host": "pypi.org"}])
def test_an_entry_that_is_not_a_string_is_refused(value):
    with pytest.raises(ValueError, match="entries are strings"):
        parse_allow_entry(value)


# -- host syntax shared with the proxy ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        ("pypi.org", ("pypi.org", None)),
        ("pypi.org:443", ("pypi.org", 443)),
        ("[::1]:8080", ("[::1]", 8080)),
        ("[::1]", ("[::1]", None)),
        ("::1", ("::1", None)),
        ("10.0.0.1:22", ("10.0.0.1", 22)),
    ],
)
def test_authorities_split_into_host_and_port(authority, expected):
    assert split_host_port(authority) == expected


@pytest.mark.parametrize(
    ("host", "normal"),
    [
        ("PyPI.org.", "pypi.org"),
        ("[::1]", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::FFFF:7f00:1", "127.0.0.1"),
        ("10.0.0.1", "10.0.0.1"),
    ],
)
def test_hosts_normalise_so_spellings_of_one_host_compare_equal(host, normal):
    assert normalise_host(host) == normal


# -- stage 1: the name ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "host", "port", "allowed"),
    [
        ("pypi.org", "pypi.org", 443, True),
        ("pypi.org", "pypi.org", 80, True),
        ("pypi.org", "pypi.org", 8080, False),
        ("pypi.org", "PYPI.ORG", 443, True),
        ("pypi.org", "pypi.org.", 443, True),
        ("PyPI.org.", "pypi.org", 443, True),
        ("pypi.org", "files.pypi.org", 443, False),  # a plain name does not cover its subdomains
        ("pypi.org", "evilpypi.org", 443, False),
        ("pypi.org", "pypi.org.evil.example", 443, False),
        ("*.npmjs.org", "registry.npmjs.org", 443, True),
        ("*.npmjs.org", "a.b.c.npmjs.org", 443, True),  # any depth
        ("*.npmjs.org", "REGISTRY.NPMJS.ORG.", 443, True),
        ("*.npmjs.org", "npmjs.org", 443, False),  # not the apex
        ("*.npmjs.org", "evilnpmjs.org", 443, False),
        ("*.npmjs.org", "npmjs.org.evil.example", 443, False),
        ("*.npmjs.org", "registry.npmjs.org", 22, False),
        ("*.example.org:8080", "a.example.org", 8080, True),
        ("*.example.org:8080", "a.example.org", 443, False),
        ("registry.example.org:8443", "registry.example.org", 8443, True),
        ("registry.example.org:8443", "registry.example.org", 443, False),
        ("https://pypi.org", "pypi.org", 443, True),
        ("https://pypi.org", "pypi.org", 80, False),  # the scheme chose the port
        ("http://pypi.org", "pypi.org", 80, True),
        ("http://pypi.org", "pypi.org", 443, False),
        ("bücher.de", "xn--bcher-kva.de", 443, True),
        ("203.0.113.7", "203.0.113.7", 443, True),  # an IP entry covers a request for that literal
        ("203.0.113.7", "203.0.113.7", 8080, False),
        ("203.0.113.7:8080", "203.0.113.7", 8080, True),
        ("203.0.113.0/24", "203.0.113.99", 5432, True),  # CIDRs: any port
        ("203.0.113.0/24", "203.0.114.1", 443, False),
        ("2001:db8::/32", "[2001:db8::5]", 443, True),
        ("[2001:db8::5]:8080", "2001:db8::5", 8080, True),
    ],
)
def test_repository_entries_cover_exactly_the_names_and_ports_they_say(entry, host, port, allowed):
    policy = EgressPolicy(repository_entries=(entry,))
    assert policy.check_host(host, port).allowed is allowed


@pytest.mark.parametrize("source", ["repository_entries", "operator_entries"])
def test_a_name_no_entry_covers_is_refused_as_not_in_network_allow(source):
    policy = EgressPolicy(model_endpoints=(MODEL,), **{source: ("pypi.org",)})
    assert policy.check_host("example.org", 443) == Decision(False, NOT_ALLOWED, None)


def test_a_repository_ip_entry_does_not_let_made_up_names_be_resolved():
    # Resolving any name the agent invents would let it spell data into DNS queries.
    policy = EgressPolicy(repository_entries=("203.0.113.0/24",))
    assert policy.check_host("c2VjcmV0.attacker.example", 443).reason == NOT_ALLOWED


def test_an_operator_ip_entry_lets_a_name_pass_the_first_stage_provisionally():
    policy = EgressPolicy(operator_entries=("203.0.113.0/24",))
    first = policy.check_host("anything.example", 443)
    assert first.allowed and first.rule is None
    assert policy.check_address("anything.example", 443, "203.0.113.9").rule == "operator entry '203.0.113.0/24'"
    assert policy.check_address("anything.example", 443, "198.51.100.1").reason == NOT_ALLOWED


def test_an_operator_ip_entry_with_a_port_lets_names_through_only_on_that_port():
    policy = EgressPolicy(operator_entries=("203.0.113.7:8080",))
    assert policy.check_host("anything.example", 8080).allowed
    assert not policy.check_host("anything.example", 443).allowed


@pytest.mark.parametrize("host", ["", "bad host", "a..b", "*.example.org", "exa_mple.org", "[10.0.0.1]"])
def test_a_malformed_request_host_is_refused_before_anything_else(host):
    policy = EgressPolicy(repository_entries=("example.org",), operator_entries=("10.0.0.0/8",))
    decision = policy.check_host(host, 443)
    assert not decision.allowed and decision.reason != NOT_ALLOWED


def test_the_model_endpoint_is_reachable_with_no_entries_at_all():
    policy = EgressPolicy(model_endpoints=(MODEL,))
    assert policy.check_host("API.Anthropic.com.", 443) == Decision(
        True, "allowed by model endpoint api.anthropic.com:443", "model endpoint api.anthropic.com:443"
    )
    assert not policy.check_host("api.anthropic.com", 80).allowed  # exactly its port
    assert not policy.check_host("evil.anthropic.com", 443).allowed


@pytest.mark.parametrize(
    ("host", "port", "allowed"),
    [
        ("api.anthropic.com", 443, True),
        ("pypi.org", 443, False),
        ("operator.example", 443, False),
        ("anything.example", 443, False),  # no provisional pass for operator CIDRs either
        ("203.0.113.7", 443, False),
    ],
)
def test_network_off_leaves_only_the_model_endpoint(host, port, allowed):
    policy = EgressPolicy(
        model_endpoints=(MODEL,),
        repository_entries=("pypi.org", "203.0.113.7"),
        operator_entries=("operator.example", "203.0.113.0/24"),
        network_off=True,
    )
    decision = policy.check_host(host, port)
    assert decision.allowed is allowed
    if not allowed:
        assert decision.reason == NETWORK_OFF
        assert not policy.check_address(host, port, PUBLIC).allowed


def test_a_public_address_of_an_allowed_name_is_allowed_and_names_the_rule():
    policy = EgressPolicy(model_endpoints=(MODEL,), repository_entries=("*.npmjs.org",))
    assert decide(policy, "registry.npmjs.org", 443, PUBLIC) == Decision(
        True, "allowed by repository entry '*.npmjs.org'", "repository entry '*.npmjs.org'"
    )
    assert decide(policy, "api.anthropic.com", 443, "2606:4700::6810:1").allowed


# -- stage 2: the address ----------------------------------------------------------------------------

ALWAYS_REFUSED = [
    ("0.0.0.0", "0.0.0.0 is unspecified (means this host); never reachable from a sandbox"),
    ("0.1.2.3", "0.1.2.3 is unspecified (means this host); never reachable from a sandbox"),
    ("::", ":: is unspecified (means this host); never reachable from a sandbox"),
    ("169.254.169.254", "169.254.169.254 is link-local (cloud metadata); never reachable from a sandbox"),
    ("169.254.170.2", "169.254.170.2 is link-local (cloud metadata); never reachable from a sandbox"),
    ("169.254.1.1", "169.254.1.1 is link-local; never reachable from a sandbox"),
    ("fe80::1", "fe80::1 is link-local; never reachable from a sandbox"),
    ("febf::1", "febf::1 is link-local; never reachable from a sandbox"),
    ("::ffff:169.254.169.254", "169.254.169.254 is link-local (cloud metadata); never reachable from a sandbox"),
    ("fd00:ec2::254", "fd00:ec2::254 is a cloud metadata address; never reachable from a sandbox"),
    ("100.100.100.200", "100.100.100.200 is a cloud metadata address; never reachable from a sandbox"),
    ("224.0.0.1", "224.0.0.1 is multicast; never reachable from a sandbox"),
    ("239.255.255.250", "239.255.255.250 is multicast; never reachable from a sandbox"),
    ("ff02::1", "ff02::1 is multicast; never reachable from a sandbox"),
    ("255.255.255.255", "255.255.255.255 is broadcast; never reachable from a sandbox"),
    ("240.0.0.1", "240.0.0.1 is reserved; never reachable from a sandbox"),
    ("fec0::1", "fec0::1 is reserved (site-local); never reachable from a sandbox"),
    ("100::1", "100::1 is reserved; never reachable from a sandbox"),
    ("::7f00:1", "::7f00:1 is reserved; never reachable from a sandbox"),  # IPv4-compatible, deprecated
    ("64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe is an IPv6 form of 169.254.169.254, which is link-local; "
                           "never reachable from a sandbox"),
    ("64:ff9b::7f00:1", "64:ff9b::7f00:1 is an IPv6 form of 127.0.0.1, which is loopback; "
                        "never reachable from a sandbox"),
    ("2002:c0a8:101::1", "2002:c0a8:101::1 is an IPv6 form of 192.168.1.1, which is private; "
                         "never reachable from a sandbox"),
]


@pytest.mark.parametrize(("address", "reason"), ALWAYS_REFUSED)
@pytest.mark.parametrize("source", ["repository", "operator name", "operator CIDR", "private_allowed", "model"])
def test_some_addresses_are_refused_whatever_anyone_lists(address, reason, source):
    grants = {
        "repository": dict(repository_entries=("pypi.org",)),
        "operator name": dict(operator_entries=("pypi.org",)),
        "operator CIDR": dict(operator_entries=("0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1")),
        "private_allowed": dict(
            repository_entries=("pypi.org",), private_allowed=("0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1")
        ),
        "model": dict(model_endpoints=(Endpoint("pypi.org", 443, operator_set=True),)),
    }[source]
    policy = EgressPolicy(**grants)
    assert policy.check_host("pypi.org", 443).allowed
    assert policy.check_address("pypi.org", 443, address) == Decision(False, reason, None)


LOOPBACK = ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "::ffff:7f00:1"]


@pytest.mark.parametrize("address", LOOPBACK)
@pytest.mark.parametrize(
    "grants",
    [
        dict(repository_entries=("localhost",)),
        dict(repository_entries=("*.example.org",)),
        dict(operator_entries=("localhost",)),  # an operator name entry is not an operator naming the address
        dict(model_endpoints=(Endpoint("localhost", 443),)),  # the default model endpoint is not a local one
        dict(repository_entries=("localhost",), private_allowed=("127.0.0.0/8", "::1/128")),
    ],
    ids=["repository-name", "repository-wildcard", "operator-name", "default-model", "private-allowed"],
)
def test_loopback_is_refused_unless_the_operator_named_it(address, grants):
    host = "a.example.org" if "*.example.org" in grants.get("repository_entries", ()) else "localhost"
    decision = EgressPolicy(**grants).check_address(host, 443, address)
    assert not decision.allowed
    assert "is loopback (this machine); only the operator can allow it" in decision.reason


@pytest.mark.parametrize("entry", ["127.0.0.1", "127.0.0.1/32", "127.0.0.0/8", "127.0.0.1:443"])
def test_a_repository_ip_entry_for_loopback_is_refused(entry):
    policy = EgressPolicy(repository_entries=(entry,))
    assert policy.check_host("127.0.0.1", 443).allowed  # covered by name...
    assert "loopback" in policy.check_address("127.0.0.1", 443, "127.0.0.1").reason  # ...but never reachable


@pytest.mark.parametrize(
    ("host", "address", "grants", "rule"),
    [
        ("127.0.0.1", "127.0.0.1", dict(operator_entries=("127.0.0.1:8080",)), "operator entry '127.0.0.1:8080'"),
        ("local.test", "127.0.0.1", dict(operator_entries=("127.0.0.0/8",)), "operator entry '127.0.0.0/8'"),
        ("localhost", "::1", dict(operator_entries=("[::1]:8080",)), "operator entry '[::1]:8080'"),
        ("localhost", "::ffff:127.0.0.1", dict(operator_entries=("127.0.0.1:8080",)),
         "operator entry '127.0.0.1:8080'"),
        ("127.0.0.1", "127.0.0.1", dict(model_endpoints=(Endpoint("127.0.0.1", 8080, operator_set=True),)),
         "model endpoint 127.0.0.1:8080"),
        ("localhost", "::1", dict(model_endpoints=(Endpoint("localhost", 8080, operator_set=True),)),
         "model endpoint localhost:8080"),
        # A repository entry for the name as well changes nothing: the operator's grant is the one that counts.
        ("localhost", "127.0.0.1", dict(repository_entries=("localhost:8080",), operator_entries=("127.0.0.1:8080",)),
         "operator entry '127.0.0.1:8080'"),
    ],
)
def test_the_operator_can_allow_loopback_by_address_or_by_a_model_base_url(host, address, grants, rule):
    assert decide(EgressPolicy(**grants), host, 8080, address) == Decision(True, f"allowed by {rule}", rule)


def test_an_operator_loopback_entry_covers_only_its_port():
    policy = EgressPolicy(operator_entries=("127.0.0.1:8080",))
    assert not policy.check_address("127.0.0.1", 8081, "127.0.0.1").allowed


PRIVATE = ["10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.1.1", "100.64.0.1", "100.127.255.254",
           "198.18.0.1", "fc00::1", "fd12:3456::1", "::ffff:10.1.2.3", "::ffff:192.168.1.1"]


@pytest.mark.parametrize("address", PRIVATE)
def test_private_ranges_are_refused_for_repository_entries(address):
    decision = EgressPolicy(repository_entries=("git.corp.example",)).check_address("git.corp.example", 443, address)
    assert not decision.allowed
    assert "is in a private range; only the operator can allow it" in decision.reason


@pytest.mark.parametrize("address", ["172.15.255.255", "172.32.0.1", "100.63.255.255", "100.128.0.1",
                                     "192.169.0.1", "11.0.0.1", "2600::1"])
def test_addresses_next_to_private_ranges_are_public(address):
    assert EgressPolicy(repository_entries=("example.org",)).check_address("example.org", 443, address).allowed


@pytest.mark.parametrize(
    ("address", "grants", "allowed"),
    [
        ("10.1.2.3", dict(private_allowed=("10.0.0.0/8",)), True),
        ("10.1.2.3", dict(private_allowed=(ipaddress.ip_network("10.1.0.0/16"),)), True),
        ("10.2.0.1", dict(private_allowed=("10.1.0.0/16",)), False),
        ("::ffff:10.1.2.3", dict(private_allowed=("10.0.0.0/8",)), True),
        ("fd00::1", dict(private_allowed=("fd00::/8",)), True),
        ("192.168.1.1", dict(private_allowed=("10.0.0.0/8",)), False),
        ("10.1.2.3", dict(operator_entries=("10.1.2.3",)), True),
        ("10.1.2.3", dict(operator_entries=("10.0.0.0/8",)), True),
        ("10.1.2.3", dict(operator_entries=("git.corp.example",)), False),  # by name only: not unlocked
        ("10.1.2.3", dict(repository_entries=("10.1.2.3",)), False),
        ("10.1.2.3", dict(repository_entries=("10.0.0.0/8",)), False),
        ("10.1.2.3", dict(model_endpoints=(Endpoint("git.corp.example", 443, operator_set=True),)), True),
        ("10.1.2.3", dict(model_endpoints=(Endpoint("git.corp.example", 443),)), False),
    ],
)
def test_private_ranges_open_only_by_operator_choice(address, grants, allowed):
    grants.setdefault("repository_entries", ("git.corp.example",))
    assert decide(EgressPolicy(**grants), "git.corp.example", 443, address).allowed is allowed


def test_an_address_in_private_allowed_still_needs_an_allowed_name():
    policy = EgressPolicy(repository_entries=("pypi.org",), private_allowed=("10.0.0.0/8",))
    assert decide(policy, "git.corp.example", 443, "10.1.2.3").reason == NOT_ALLOWED
    assert decide(policy, "pypi.org", 443, "10.1.2.3").reason == (
        "allowed by repository entry 'pypi.org' (private range 10.0.0.0/8 is allowed)"
    )


@pytest.mark.parametrize(
    ("protected", "address", "port"),
    [
        (("127.0.0.1", 8000), "127.0.0.1", 8000),
        (("127.0.0.1", 8000), "::ffff:127.0.0.1", 8000),
        (("::1", 6379), "::1", 6379),
        (("10.0.0.5", 5432), "10.0.0.5", 5432),
        (("0.0.0.0", 8000), "203.0.113.7", 8000),  # bound to every address: refused on every address
        (("::", 8000), "2001:db8::7", 8000),
    ],
)
def test_the_apps_own_services_are_refused_even_when_an_operator_entry_allows_them(protected, address, port):
    policy = EgressPolicy(
        model_endpoints=(Endpoint("localhost", port, operator_set=True),),
        operator_entries=("0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"),
        protected=frozenset({protected}),
    )
    decision = policy.check_address("localhost", port, address)
    assert not decision.allowed
    assert decision.reason.endswith("is one of Draftsmith's own services; never reachable from a sandbox")


def test_a_protected_address_is_refused_only_on_its_port():
    policy = EgressPolicy(operator_entries=("127.0.0.1/32",), protected=frozenset({("127.0.0.1", 8000)}))
    assert policy.check_address("127.0.0.1", 8001, "127.0.0.1").allowed


@pytest.mark.parametrize("address", ["not-an-ip", "", "fe80::1%eth0", "10.0.0.256"])
def test_a_malformed_resolved_address_is_refused(address):
    assert not EgressPolicy(repository_entries=("pypi.org",)).check_address("pypi.org", 443, address).allowed


def test_a_name_resolving_to_several_addresses_may_use_only_those_that_pass():
    policy = EgressPolicy(repository_entries=("mixed.example",))
    addresses = ["10.0.0.1", PUBLIC, "169.254.169.254", "2001:db8::1", "::1"]
    usable = [a for a in addresses if policy.check_address("mixed.example", 443, a).allowed]
    assert usable == [PUBLIC, "2001:db8::1"]


# -- endpoints, policies and hints -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("https://api.anthropic.com", Endpoint("api.anthropic.com", 443)),
        ("https://API.openai.com/v1", Endpoint("api.openai.com", 443)),
        ("http://127.0.0.1:4000/v1", Endpoint("127.0.0.1", 4000)),
        ("http://[::1]:11434", Endpoint("::1", 11434)),
        ("http://ollama.local", Endpoint("ollama.local", 80)),
    ],
)
def test_model_endpoints_come_from_base_urls(url, endpoint):
    assert Endpoint.from_url(url) == endpoint


@pytest.mark.parametrize("url", ["api.anthropic.com", "ftp://api.example", "https://"])
def test_a_base_url_that_is_not_http_is_refused(url):
    with pytest.raises(ValueError):
        Endpoint.from_url(url)


def test_policies_accept_entries_as_strings_and_raise_on_bad_ones():
    assert EgressPolicy(repository_entries=["pypi.org"]).repository_entries == (parse_allow_entry("pypi.org"),)
    with pytest.raises(ValueError, match="would allow every host"):
        EgressPolicy(operator_entries=("*",))


@pytest.mark.parametrize(
    ("host", "port", "hint"),
    [
        ("example.org", 443, 'network: {allow: ["example.org"]}'),
        ("Example.ORG.", 80, 'network: {allow: ["example.org"]}'),
        ("example.org", 8443, 'network: {allow: ["example.org:8443"]}'),
        ("203.0.113.7", 443, 'network: {allow: ["203.0.113.7"]}'),
        ("2001:db8::1", 8080, 'network: {allow: ["[2001:db8::1]:8080"]}'),
    ],
)
def test_the_allow_hint_is_the_config_line_that_would_allow_the_host(host, port, hint):
    assert allow_hint(host, port) == hint
    address = host if ip_literal(host) else PUBLIC
    assert decide(EgressPolicy(repository_entries=(hint.split('"')[1],)), host, port, address).allowed


@pytest.mark.parametrize("host, words", [
    ("127.0.0.1", "loopback"), ("10.1.2.3", "private range"), ("169.254.169.254", "link-local"),
])
def test_an_unlisted_local_literal_says_why_listing_it_would_not_help(host, words):
    decision = EgressPolicy().check_host(host, 6379)
    assert not decision.allowed and words in decision.reason and decision.reason != NOT_ALLOWED
