"""A run's egress policy: its model endpoints, the app's own addresses, and the forwards a sandbox gets."""

from __future__ import annotations

from app.github.repo_config import NetworkConfig
from app.engines.sandbox.network import RunNetwork, build_policy, model_endpoints, protected_addresses
from app.settings import Settings


def test_model_endpoints_are_the_providers_apis_and_the_operators_base_urls():
    endpoints = model_endpoints(["ANTHROPIC_API_KEY"], {"OPENAI_BASE_URL": "http://127.0.0.1:8799/v1"})

    assert [(e.host, e.port, e.operator_set) for e in endpoints] == [
        ("api.anthropic.com", 443, False), ("127.0.0.1", 8799, True)]


def test_the_apps_own_web_redis_and_database_addresses_are_protected_on_every_address_they_name():
    settings = Settings(DRAFTSMITH_HOST="localhost", DRAFTSMITH_PORT=3000,
                        DATABASE_URL="postgresql://u:p@127.0.0.1:5433/db")

    protected = protected_addresses(settings, "redis://:secret@localhost:6390/0")

    assert {("127.0.0.1", 3000), ("127.0.0.1", 6390), ("127.0.0.1", 5433)} <= protected
    assert ("0.0.0.0", 3000) in protected_addresses(Settings(DRAFTSMITH_HOST="0.0.0.0"), None)


def test_loopback_model_urls_and_operator_loopback_ports_get_forwards_inside_the_sandbox(tmp_path):
    settings = Settings(DRAFTSMITH_EGRESS_ALLOW="127.0.0.1:3141, pypi.org, 10.0.0.0/8, 127.0.0.1:80")
    endpoints = model_endpoints(["OPENAI_API_KEY"], {"OPENAI_BASE_URL": "http://127.0.0.1:8799/v1"})
    network = RunNetwork(tmp_path / "egress", build_policy(settings, NetworkConfig(), endpoints, None), print)

    forwards = {(f.listen_port, f.target_host, f.target_port) for f in network.egress.forwards}

    assert forwards == {(8799, "127.0.0.1", 8799), (3141, "127.0.0.1", 3141)}, "none below 1024, none for names"
    assert (tmp_path / "egress").stat().st_mode & 0o777 == 0o700


def test_a_data_dir_too_deep_for_a_unix_socket_gets_a_short_private_one(tmp_path):
    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 5) / "run-1" / "egress"
    network = RunNetwork(deep, build_policy(Settings(), NetworkConfig(), [], None), print)
    socket_path = network.egress.socket_path
    assert len(str(socket_path)) <= 100
    with network:
        assert socket_path.exists() and socket_path.parent.stat().st_mode & 0o777 == 0o700
    assert not socket_path.parent.exists(), "the short directory goes with the run"
