"""Every environment variable the README's configuration table (and the Dockerfile) names reaches its setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"`((?:DRAFTSMITH|GITHUB)_[A-Z0-9_]+|DATABASE_URL|REDIS_URL)`")

# name: (field, what a user writes, what the setting then holds)
SAMPLES = {
    "GITHUB_APP_ID": ("github_app_id", "1234", 1234),
    "GITHUB_PRIVATE_KEY": ("github_private_key", "-----BEGIN KEY-----", "-----BEGIN KEY-----"),
    "GITHUB_PRIVATE_KEY_PATH": ("github_private_key_path", "/keys/app.pem", Path("/keys/app.pem")),
    "GITHUB_WEBHOOK_SECRET": ("github_webhook_secret", "hush", "hush"),
    "GITHUB_CLIENT_ID": ("github_client_id", "Iv1.abc", "Iv1.abc"),
    "GITHUB_CLIENT_SECRET": ("github_client_secret", "shh", "shh"),
    "GITHUB_API_URL": ("github_api_url", "https://ghe.example/api/v3", "https://ghe.example/api/v3"),
    "DATABASE_URL": ("database_url", "postgresql://u@db/d", "postgresql://u@db/d"),
    "REDIS_URL": ("redis_url", "redis://:pw@queue:6379/0", "redis://:pw@queue:6379/0"),
    "DRAFTSMITH_HOST": ("host", "0.0.0.0", "0.0.0.0"),
    "DRAFTSMITH_PORT": ("port", "3100", 3100),
    "DRAFTSMITH_PUBLIC_URL": ("public_url", "https://bot.example", "https://bot.example"),
    "DRAFTSMITH_WEBHOOK_RELAY_URL": ("webhook_relay_url", "https://smee.io/AbC123", "https://smee.io/AbC123"),
    "DRAFTSMITH_DATA_DIR": ("data_dir", "/data", Path("/data")),
    "DRAFTSMITH_WEB_PROCESSES": ("web_processes", "2", 2),
    "DRAFTSMITH_WORKER_PROCESSES": ("worker_processes", "3", 3),
    "DRAFTSMITH_WORKER_THREADS": ("worker_threads", "8", 8),
    "DRAFTSMITH_RUN_THREADS": ("run_threads", "6", 6),
    "DRAFTSMITH_WORKER_NICENESS": ("worker_niceness", "19", 19),
    "DRAFTSMITH_LOG_FORMAT": ("log_format", "json", "json"),
    "DRAFTSMITH_LOG_LEVEL": ("log_level", "debug", "debug"),
    "DRAFTSMITH_ENCRYPTION_KEY": ("encryption_key", "k1:AAAA", "k1:AAAA"),
    "DRAFTSMITH_SANDBOX": ("sandbox", "docker", "docker"),
    "DRAFTSMITH_DOCKER_IMAGE": ("docker_image", "python:3.12-slim", "python:3.12-slim"),
    "DRAFTSMITH_EGRESS_ALLOW": ("egress_allow", "pypi.org, 127.0.0.1:3141", "pypi.org, 127.0.0.1:3141"),
    "DRAFTSMITH_EGRESS_PRIVATE_RANGES": ("egress_private_ranges", "10.20.0.0/16", "10.20.0.0/16"),
    "DRAFTSMITH_SANDBOX_CA_FILE": ("sandbox_ca_file", "/etc/ca.pem", Path("/etc/ca.pem")),
    "DRAFTSMITH_WORKSPACE_DIR": ("workspace_dir", "/scratch", Path("/scratch")),
    "DRAFTSMITH_AGENTS_DIR": ("agents_dir", "/opt/agents", Path("/opt/agents")),
    "DRAFTSMITH_MAX_CONCURRENT_TASKS": ("max_concurrent_tasks", "7", 7),
    "DRAFTSMITH_MAX_TASKS_PER_DAY": ("max_tasks_per_day", "70", 70),
    "DRAFTSMITH_DAILY_COST_CAP_USD": ("daily_cost_cap_usd", "12.5", 12.5),
    "DRAFTSMITH_RUN_TIME_LIMIT": ("run_time_limit_seconds", "900", 900.0),
    "DRAFTSMITH_HEARTBEAT_TIMEOUT": ("heartbeat_timeout_seconds", "45", 45),
    "DRAFTSMITH_SWEEP_INTERVAL": ("sweep_interval_seconds", "2.5", 2.5),
    "DRAFTSMITH_RECOVERY_INTERVAL": ("recovery_interval_seconds", "60", 60.0),
    "DRAFTSMITH_REQUEUE_DEAD_RUNS": ("requeue_dead_runs", "true", True),
    "DRAFTSMITH_CHECKPOINT_SECONDS": ("checkpoint_seconds", "30", 30),
    "DRAFTSMITH_RETENTION_DAYS": ("retention_days", "7", 7),
    "DRAFTSMITH_AUDIT_RETENTION_DAYS": ("audit_retention_days", "90", 90),
    "DRAFTSMITH_ACTIONS_STARTUP_TIMEOUT": ("actions_startup_timeout_seconds", "600", 600.0),
    "DRAFTSMITH_ACTIONS_OIDC_ISSUER": ("actions_oidc_issuer", "https://ghe.example/_services/token",
                                       "https://ghe.example/_services/token"),
    "DRAFTSMITH_RUNNER_PACKAGE": ("runner_package", "draftsmith @ git+https://github.com/o/draftsmith@" + "a" * 40,
                                  "draftsmith @ git+https://github.com/o/draftsmith@" + "a" * 40),
    "DRAFTSMITH_RUNNER": ("default_runner", "kubernetes", "kubernetes"),
    "DRAFTSMITH_KUBERNETES_KUBECONFIG": ("kubernetes_kubeconfig", "/etc/draftsmith/kubeconfig",
                                         Path("/etc/draftsmith/kubeconfig")),
    "DRAFTSMITH_KUBERNETES_NAMESPACE": ("kubernetes_namespace", "agents", "agents"),
    "DRAFTSMITH_KUBERNETES_IMAGE": ("kubernetes_image", "ghcr.io/o/draftsmith:1", "ghcr.io/o/draftsmith:1"),
    "DRAFTSMITH_KUBERNETES_RESOURCES": ("kubernetes_resources", "cpu=2,memory=4Gi", "cpu=2,memory=4Gi"),
    "DRAFTSMITH_KUBERNETES_RUNTIME_CLASS": ("kubernetes_runtime_class", "gvisor", "gvisor"),
    "DRAFTSMITH_KUBERNETES_NODE_SELECTOR": ("kubernetes_node_selector", "pool=agents", "pool=agents"),
    "DRAFTSMITH_KUBERNETES_EGRESS_PROXY": ("kubernetes_egress_proxy", "http://10.0.0.9:3128", "http://10.0.0.9:3128"),
    "DRAFTSMITH_KUBERNETES_STARTUP_TIMEOUT": ("kubernetes_startup_timeout_seconds", "120", 120.0),
    "DRAFTSMITH_KUBERNETES_TTL": ("kubernetes_ttl_seconds", "60", 60),
}


def documented_names() -> set[str]:
    """The names in the README's Configuration table and the Dockerfile's ENV lines."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names = {name for line in table.splitlines() if line.startswith("| `") for name in NAME.findall(line)}
    dockerfile = (ROOT / "Dockerfile").read_text()
    return names | set(re.findall(r"\b(DRAFTSMITH_[A-Z0-9_]+)=", dockerfile))


def held(settings: Settings, field: str):
    value = getattr(settings, field)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_every_documented_variable_has_a_sample_here():
    assert documented_names() - SAMPLES.keys() == set()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_documented_variable_reaches_its_setting(name, monkeypatch, tmp_path):
    field, written, expected = SAMPLES[name]
    monkeypatch.chdir(tmp_path)  # no .env of anyone's
    for other in SAMPLES:
        monkeypatch.delenv(other, raising=False)

    monkeypatch.setenv(name, written)
    from_environment = Settings()
    monkeypatch.delenv(name)
    (tmp_path / "settings.env").write_text(f"{name}={written}\n")
    from_file = Settings(_env_file=tmp_path / "settings.env")  # type: ignore[call-arg]

    assert held(from_environment, field) == expected
    assert held(from_file, field) == expected
    assert held(Settings(**{name: written}), field) == expected  # what launchers and tests pass
    assert held(Settings(**{field: written}), field) == expected


def test_a_keyword_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("DRAFTSMITH_PORT", "3100")

    assert Settings(DRAFTSMITH_PORT=3200).port == 3200


def test_unprefixed_field_names_in_the_environment_are_not_settings(monkeypatch):
    # A platform's PORT or a shell's HOST used to leak in through the field name (issue 16's settings habit).
    monkeypatch.setenv("PORT", "8080")
    monkeypatch.setenv("HOST", "example.org")

    settings = Settings()

    assert (settings.host, settings.port) == ("127.0.0.1", 3000)
