"""Settings, built once at start-up from the environment and an optional .env file, then passed down."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


ENV_PREFIX = "DRAFTSMITH_"


class Settings(BaseSettings):
    """Field names stay pythonic; the environment names are a public contract (README's table, tested).

    A setting is DRAFTSMITH_<FIELD NAME> unless its field names another variable: GitHub's and the
    database's and Redis's conventional names, and four that keep the names they shipped with.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", populate_by_name=True,
                                      case_sensitive=False)

    github_app_id: int | None = Field(None, validation_alias="GITHUB_APP_ID")
    github_private_key: SecretStr | None = Field(None, validation_alias="GITHUB_PRIVATE_KEY")
    github_private_key_path: Path | None = Field(None, validation_alias="GITHUB_PRIVATE_KEY_PATH")
    github_webhook_secret: SecretStr | None = Field(None, validation_alias="GITHUB_WEBHOOK_SECRET")
    github_api_url: str = Field("https://api.github.com", validation_alias="GITHUB_API_URL")
    # The App's OAuth client: signs users in (dashboard); the manifest flow writes both.
    github_client_id: str | None = Field(None, validation_alias="GITHUB_CLIENT_ID")
    github_client_secret: SecretStr | None = Field(None, validation_alias="GITHUB_CLIENT_SECRET")
    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(None, validation_alias="REDIS_URL")

    host: str = "127.0.0.1"
    port: int = 3000
    log_format: Literal["console", "json"] = "console"
    log_level: str = "info"
    # Where the embedded default keeps its SQLite file, Redis data and password, workspaces and generated keys.
    data_dir: Path = Path(".draftsmith")
    # The URL GitHub users (details links) and Actions runners (callbacks) reach this app at.
    public_url: str | None = None
    # A smee.io-style relay channel GitHub posts the App's webhooks to, for a host GitHub cannot reach:
    # `serve` runs one subscriber (app.relay) that replays each delivery into this app's own ingress.
    webhook_relay_url: str | None = None

    web_processes: int = 1
    worker_processes: int = 1
    # Per worker process: threads handling webhooks (acknowledgements, commands), and runs at once, apart
    # so that acknowledgements never wait behind runs.
    worker_threads: int = 4
    run_threads: int = Field(4, ge=1)
    # Nice value `serve` adds to the workers it runs beside its web processes: GitHub waits on a
    # webhook's answer, while processing can lag a burst by seconds. 0 shares the CPU evenly.
    worker_niceness: int = Field(10, ge=0, le=19)

    # Sandbox backend for agent runs: bubblewrap (local), docker, or no isolation at all (unsafe-local).
    sandbox: Literal["local", "unsafe-local", "docker"] = "local"
    # Image the docker sandbox runs agents in; it must hold the agent CLIs the repositories use.
    docker_image: str | None = None
    # Hosts every sandbox may reach besides the model API and the repository's network.allow, in the same
    # syntax; IP and CIDR entries here may name loopback or private addresses (a local registry mirror).
    egress_allow: str = ""
    # Private ranges (CIDRs) that allowed names may resolve to, e.g. an internal package index.
    egress_private_ranges: str = ""
    # A PEM file of CA certificates sandboxes trust besides the system's (a TLS-inspecting proxy, a private CA).
    sandbox_ca_file: Path | None = None
    workspace_dir: Path | None = None
    # Where `draftsmith agents install` puts agent CLIs (one venv or npm prefix each); workers look there.
    agents_dir: Path | None = None
    encryption_key: SecretStr | None = None

    # Per installation: runs at once (more wait their turn in the queue), then daily budgets, over which a
    # trigger gets a reply that says when they reset.
    max_concurrent_tasks: int = 5
    max_tasks_per_day: int = 200
    daily_cost_cap_usd: float | None = None
    # The server's cap on one run's time, over any repository's max_runtime_minutes (operators' budget).
    run_time_limit_seconds: float | None = Field(None, validation_alias="DRAFTSMITH_RUN_TIME_LIMIT")
    # A run whose heartbeat is older than this is considered dead (its worker crashed).
    heartbeat_timeout_seconds: int = Field(60, validation_alias="DRAFTSMITH_HEARTBEAT_TIMEOUT")
    requeue_dead_runs: bool = False
    # What the sweeper prunes past this age: delivery bodies, run logs, transcripts and diffs; audit entries.
    retention_days: int = Field(30, ge=1)
    audit_retention_days: int = Field(365, ge=1)
    # How often a run pushes the agent's work to its draft PR (a repository's checkpoint_seconds wins); 0: off.
    checkpoint_seconds: int = Field(120, ge=0)
    # How often serve/worker look for deliveries never processed and runs never finished.
    sweep_interval_seconds: float = Field(15.0, validation_alias="DRAFTSMITH_SWEEP_INTERVAL")
    # How often the sweeper asks GitHub for deliveries it could not hand over, and has them sent again
    # (app.deliveries.recovery); also once shortly after start-up. 0: never.
    recovery_interval_seconds: float = Field(300.0, ge=0, validation_alias="DRAFTSMITH_RECOVERY_INTERVAL")

    # An Actions run that has not called back this long after its dispatch never started (GitHub still
    # queues it, or no workflow run appeared); until then GitHub's word that it is queued keeps it alive.
    actions_startup_timeout_seconds: float = Field(900, gt=0, validation_alias="DRAFTSMITH_ACTIONS_STARTUP_TIMEOUT")
    # Issuer of the Actions OIDC tokens runners call back with; by default GitHub.com's, or
    # https://HOST/_services/token when GITHUB_API_URL names a GitHub Enterprise Server.
    actions_oidc_issuer: str | None = None
    # What Actions runners install instead of this server's own wheel: a requirement pinned to one commit
    # (`draftsmith @ git+https://github.com/OWNER/draftsmith@<40-hex sha>`) or to a hash (`--hash=sha256:`).
    runner_package: str | None = None

    # Where runs execute when a repository's config names no `runner:` (app/engines/registry.py).
    default_runner: Literal["sandbox", "actions", "kubernetes"] = Field("sandbox", validation_alias="DRAFTSMITH_RUNNER")
    # runner: kubernetes — each run a Job in this namespace, with this image (the project's, with the agents).
    kubernetes_kubeconfig: Path | None = None  # None: the in-cluster account, else ~/.kube/config
    kubernetes_namespace: str = "draftsmith-runs"
    kubernetes_image: str | None = None
    kubernetes_runtime_class: str | None = None  # e.g. gvisor or kata
    kubernetes_node_selector: str = ""  # key=value,key=value
    kubernetes_resources: str = "cpu=1,memory=2Gi,ephemeral-storage=4Gi"  # requests and limits of each run's pod
    # The cluster's HTTP egress proxy (http://HOST:PORT), which checks host names as the sandbox's proxy does;
    # without it a run's NetworkPolicy can only let named hosts out to public addresses.
    kubernetes_egress_proxy: str | None = None
    # A run whose pod is not running this long after its Job was created fails as never started.
    kubernetes_startup_timeout_seconds: float = Field(600, gt=0, validation_alias="DRAFTSMITH_KUBERNETES_STARTUP_TIMEOUT")
    kubernetes_ttl_seconds: int = Field(600, ge=0, validation_alias="DRAFTSMITH_KUBERNETES_TTL")

    @model_validator(mode="before")
    @classmethod
    def _by_environment_name(cls, data):
        """Take DRAFTSMITH_<FIELD> as a keyword too (`Settings(DRAFTSMITH_PORT=0)`), as the aliased names are.

        env_prefix applies only to the environment and .env files; callers (tests, launchers) pass
        settings under the names users know.
        """
        if not isinstance(data, dict):
            return data
        for key in [k for k in data if isinstance(k, str) and k.upper().startswith(ENV_PREFIX)]:
            name = key[len(ENV_PREFIX):].lower()
            field = cls.model_fields.get(name)
            if field is not None and field.validation_alias is None:
                data[name] = data.pop(key)  # given by the caller, so it wins over the environment's
        return data

    @field_validator("runner_package")
    @classmethod
    def _pinned_requirement(cls, value: str | None) -> str | None:
        if value and not re.search(r"@[0-9a-f]{40}\b|--hash=sha256:[0-9a-f]{64}\b", value):
            raise ValueError(
                "DRAFTSMITH_RUNNER_PACKAGE must pin one version: a git URL at a full commit sha "
                "(draftsmith @ git+https://github.com/OWNER/draftsmith@<40-hex sha>) or a requirement with "
                "--hash=sha256:<64 hex>")
        return value or None

    @field_validator("webhook_relay_url")
    @classmethod
    def _relay_url(cls, value: str | None) -> str | None:
        if value and not re.match(r"https?://[^/]+/.+", value):
            raise ValueError("DRAFTSMITH_WEBHOOK_RELAY_URL must be a channel URL, e.g. https://smee.io/AbC123")
        return value or None

    @field_validator("egress_allow")
    @classmethod
    def _egress_entries(cls, value: str) -> str:
        from app.egress.policy import parse_allow_entry

        for entry in _words(value):
            parse_allow_entry(entry)  # a bad entry stops start-up with the parser's message
        return value

    @field_validator("egress_private_ranges")
    @classmethod
    def _private_ranges(cls, value: str) -> str:
        for entry in _words(value):
            ipaddress.ip_network(entry)
        return value

    @field_validator("kubernetes_node_selector", "kubernetes_resources")
    @classmethod
    def _key_values(cls, value: str) -> str:
        _pairs(value)
        return value

    @property
    def kubernetes_node_labels(self) -> dict[str, str]:
        return _pairs(self.kubernetes_node_selector)

    @property
    def kubernetes_resource_limits(self) -> dict[str, str]:
        return _pairs(self.kubernetes_resources)

    @property
    def egress_allow_entries(self) -> list[str]:
        return _words(self.egress_allow)

    @property
    def egress_private_networks(self) -> list[str]:
        return _words(self.egress_private_ranges)

    @property
    def run_slots(self) -> int:
        """Runs at once across this server's worker processes (separately started workers add theirs)."""
        return self.run_threads * self.worker_processes

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # psycopg 3 is the driver we ship; plain postgresql:// would ask SQLAlchemy for psycopg2.
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{(self.data_dir / 'draftsmith.db').resolve()}"

    @property
    def uses_embedded_redis(self) -> bool:
        return not self.redis_url

    @property
    def redis_password(self) -> str | None:
        """The password in REDIS_URL (`redis://:PASSWORD@host` or redis-py's `?password=`), if any."""
        if not self.redis_url:
            return None
        parts = urlsplit(self.redis_url)
        if parts.password:
            return unquote(parts.password)
        return next(iter(parse_qs(parts.query).get("password", [])), None)

    @property
    def effective_workspace_dir(self) -> Path:
        return self.workspace_dir or (self.data_dir / "workspaces")

    @property
    def effective_agents_dir(self) -> Path:
        return (self.agents_dir or (self.data_dir / "agents")).absolute()

    def private_key_pem(self) -> str | None:
        if self.github_private_key is not None:
            # .env files often hold the PEM with literal \n sequences.
            return self.github_private_key.get_secret_value().replace("\\n", "\n")
        if self.github_private_key_path is not None:
            return self.github_private_key_path.read_text()
        return None

    def missing_github_settings(self) -> list[str]:
        """Names of the settings still needed before the app can talk to GitHub."""
        missing = []
        if self.github_app_id is None:
            missing.append("GITHUB_APP_ID")
        if self.github_private_key is None and self.github_private_key_path is None:
            missing.append("GITHUB_PRIVATE_KEY or GITHUB_PRIVATE_KEY_PATH")
        if self.github_webhook_secret is None:
            missing.append("GITHUB_WEBHOOK_SECRET")
        return missing

    @property
    def webhook_secrets(self) -> list[str]:
        """GITHUB_WEBHOOK_SECRET as `new,old` while rotating: the first signs, any of them verifies."""
        raw = self.github_webhook_secret.get_secret_value() if self.github_webhook_secret else ""
        return [part.strip() for part in raw.split(",") if part.strip()]

    @property
    def signing_secret(self) -> str | None:
        """The webhook secret in use (the first while rotating): it also signs the task page links."""
        secrets = self.webhook_secrets
        return secrets[0] if secrets else None

    def secret_values(self) -> list[str]:
        """Every configured secret, so logs can scrub them."""
        values = list(self.webhook_secrets)
        for secret in (self.github_private_key, self.github_webhook_secret, self.github_client_secret,
                       self.encryption_key):
            if secret is not None and secret.get_secret_value():
                values.append(secret.get_secret_value())
        if self.webhook_relay_url:  # whoever has it can read every delivery
            values.append(self.webhook_relay_url)
        if self.redis_password:
            # As written in the URL too, where it may be percent-encoded.
            values += sorted({self.redis_password, quote(self.redis_password, safe="")})
        return values


def _pairs(value: str) -> dict[str, str]:
    pairs = {}
    for word in _words(value):
        key, sep, item = word.partition("=")
        if not sep or not key.strip() or not item.strip():
            raise ValueError(f"{word!r} is not key=value")
        pairs[key.strip()] = item.strip()
    return pairs


def _words(value: str) -> list[str]:
    """A list setting written as one environment variable: comma- or space-separated."""
    return [word for word in re.split(r"[,\s]+", value or "") if word]


# `serve` (or any launcher) names the settings file here so every process it starts reads the same settings.
ENV_FILE_VARIABLE = "DRAFTSMITH_ENV_FILE"


def settings_from_environment() -> Settings:
    """Settings as `serve` hands them to its children: the environment plus DRAFTSMITH_ENV_FILE."""
    import os

    env_file = os.environ.get(ENV_FILE_VARIABLE)
    return load_settings(Path(env_file) if env_file else None)


def load_settings(env_file: Path | None = None, **overrides) -> Settings:
    """Build settings from the environment, then `env_file` (default `.env` when it exists), then the data
    dir's App settings file (what /setup wrote; app_settings_path), each winning over the next."""
    if env_file is None and Path(".env").exists():
        env_file = Path(".env")
    settings = Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    app_file = app_settings_path(settings)
    if not app_file.is_file():
        return settings
    # pydantic-settings lets later files win; the environment and keywords win over every file.
    files = (app_file, env_file) if env_file is not None else app_file
    return Settings(_env_file=files, **overrides)  # type: ignore[call-arg]


# The file /setup (the manifest flow) writes the new App's credentials to, in the data dir.
APP_SETTINGS_FILE = "github-app.env"


def app_settings_path(settings: Settings) -> Path:
    return settings.data_dir / APP_SETTINGS_FILE


def write_app_settings(path: Path, values: dict[str, str], comment: str = "") -> None:
    """Create `path` as a dotenv file holding `values`, readable by this user only from its first byte.

    Written to a temporary file opened with mode 0600, then linked into place, so no process ever
    reads half a file and an existing file is never replaced (FileExistsError: set up already).
    """
    import os
    import secrets

    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    for name, value in values.items():
        if "$" in value:  # dotenv would expand ${...}; nothing GitHub hands out contains one
            raise ValueError(f"{name} holds a '$'")
        quoted = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        lines.append(f'{name}="{quoted}"')
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
