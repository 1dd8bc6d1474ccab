"""The Agent interface: what every coding-agent adapter gives (argv, env, files) and gets back (a result)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

# Directories searched for agent CLIs before PATH (os.pathsep-separated), so a worker can keep each CLI in
# its own venv or node prefix without putting it on everyone's PATH.
AGENT_PATH_ENV = "DRAFTSMITH_AGENT_PATH"

# Provider settings that may accompany a key (an OpenAI-compatible server, a proxy); passed to any agent
# that uses that provider.
BASE_URL_VARS = ("OPENAI_BASE_URL", "OPENAI_API_BASE", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL")

# For CLIs built on Bun (Claude Code, OpenCode): its allocator, mimalloc, reserves address space in 1 GiB
# arenas, and under the sandbox's address-space limit (RLIMIT_AS, 4 GiB) one run in three of the real
# OpenCode crashed ("MemoryExhaustion: Crash intentionally"); 64 MiB arenas made it 0 in 12.
BUN_MEMORY_ENV = {"MIMALLOC_ARENA_RESERVE": "64MiB"}

# litellm-style provider prefixes ("anthropic/claude-...") and the key each one reads.
PROVIDER_KEYS = {
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "google": "GEMINI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
}


@dataclass(frozen=True)
class AgentRequest:
    """Everything an adapter needs to build one non-interactive run.

    `workspace` is the git checkout the agent edits. `artifacts_dir` is a private directory *outside* the
    workspace (so nothing in it is ever committed), writable by the agent, bound into the sandbox at the
    same absolute path: prompt files, trajectories, the agent's HOME and config live there.
    `config` is the repository config (RepoConfig, or any mapping while that lands).
    """

    prompt: str
    model: str | None
    plan_mode: bool
    config: Any
    credentials: dict[str, str]
    workspace: Path
    artifacts_dir: Path


@dataclass(frozen=True)
class Invocation:
    """How to start the agent: the runner writes `files`, then runs `argv` in `cwd` with `env` added to its
    minimal base environment (PATH, LANG). Keys of `files` are relative to the request's artifacts_dir.
    `workspace_writable` is False in plan mode: the sandbox binds the workspace read-only."""

    argv: list[str]
    env: dict[str, str]
    files: dict[str, str] = field(default_factory=dict)
    stdin: str | None = None
    cwd: Path | None = None
    workspace_writable: bool = True


@dataclass(frozen=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None


@dataclass(frozen=True)
class AgentResult:
    success: bool
    summary: str
    usage: Usage = field(default_factory=Usage)
    transcript: str | None = None
    plan: str | None = None


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str
    install_hint: str


@runtime_checkable
class Agent(Protocol):
    name: str

    def required_credentials(self, model: str | None) -> list[str]:
        """Environment variable names (provider keys) this agent needs for `model`."""
        ...

    def availability(self) -> Availability: ...

    def prepare(self, request: AgentRequest) -> Invocation: ...

    def parse_result(self, request: AgentRequest, exit_code: int, stdout: str, stderr: str) -> AgentResult: ...


class MissingCredentials(Exception):
    """The installation has not stored a key the chosen agent needs; the message says how to set it."""

    def __init__(self, agent: str, names: list[str], installation_id: int | None = None) -> None:
        self.agent = agent
        self.names = names
        where = f"--installation {installation_id}" if installation_id is not None else "--installation ID"
        commands = "; ".join(f"`draftsmith credentials set {where} {name}`" for name in names)
        super().__init__(f"The {agent} agent needs {', '.join(names)}, which is not set. Set it with {commands}.")


class AgentNotInstalled(Exception):
    """The chosen agent's CLI is not on this worker; the message says which command installs it."""

    def __init__(self, agent: str, binary: str, install: str) -> None:
        self.agent = agent
        super().__init__(f"The {agent} agent's CLI (`{binary}`) is not installed on this worker "
                         f"(looked on {search_path_text()}). Install it with `{install}`.")


def config_value(config: Any, key: str, default: Any = None) -> Any:
    """Read `key` from a RepoConfig (attribute) or a plain mapping."""
    if config is None:
        return default
    if isinstance(config, Mapping):
        return config.get(key, default)
    return getattr(config, key, default)


# `draftsmith agents install` puts each CLI in <agents dir>/<agent>/ (a venv, or an npm prefix) and writes
# this file there last, so a half-finished install is never picked up.
INSTALLED_MARKER = "draftsmith-agent.json"
# Set where a process starts, from settings.effective_agents_dir (Runtime, the `agents` command).
_agents_dirs: list[Path] = []


def use_agents_dir(path: Path) -> None:
    """Look for CLIs installed under `path` (after DRAFTSMITH_AGENT_PATH, before PATH)."""
    _agents_dirs[:] = [Path(path).absolute()]


def agents_dir() -> Path | None:
    return _agents_dirs[0] if _agents_dirs else None


def installed_bin_dirs() -> list[Path]:
    """bin/ of every finished install under the agents dir, in name order."""
    root = agents_dir()
    if root is None or not root.is_dir():
        return []
    return [child / "bin" for child in sorted(root.iterdir()) if (child / INSTALLED_MARKER).is_file()]


def search_path_text() -> str:
    """Where find_binary looks, for messages."""
    root = agents_dir()
    return f"{AGENT_PATH_ENV}, {root} or PATH" if root else f"{AGENT_PATH_ENV} or PATH"


def find_binary(name: str) -> str | None:
    """Absolute path of an agent CLI: DRAFTSMITH_AGENT_PATH first, then the agents dir, then PATH."""
    extra = [Path(d) for d in os.environ.get(AGENT_PATH_ENV, "").split(os.pathsep) if d]
    for directory in [*extra, *installed_bin_dirs()]:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def binary_availability(binary: str, install_hint: str, version_args: tuple[str, ...] = ("--version",)) -> Availability:
    path = find_binary(binary)
    if path is None:
        return Availability(False, f"`{binary}` not found on {search_path_text()}", install_hint)
    try:
        done = subprocess.run(
            [path, *version_args], capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Availability(False, f"{path} does not run: {exc}", install_hint)
    version = _first_version(done.stdout + "\n" + done.stderr)
    if done.returncode != 0 and version is None:
        return Availability(False, f"{path} --version exited {done.returncode}", install_hint)
    return Availability(True, f"{path} ({version or 'version unknown'})", install_hint)


def _first_version(text: str) -> str | None:
    match = re.search(r"\d+\.\d+(?:\.\d+)?(?:[-.+\w]*)?", text)
    return match.group(0) if match else None


def credentials_for_model(model: str | None, default: str | None = None) -> list[str]:
    """The key a litellm-style model name needs ("openrouter/x/y" -> OPENROUTER_API_KEY)."""
    if model and "/" in model:
        provider = model.split("/", 1)[0].lower()
        if provider in PROVIDER_KEYS:
            return [PROVIDER_KEYS[provider]]
    if model:
        lowered = model.lower()
        if lowered.startswith("claude"):
            return ["ANTHROPIC_API_KEY"]
        if lowered.startswith(("gpt", "o1", "o3", "o4", "codex")):
            return ["OPENAI_API_KEY"]
        if lowered.startswith("gemini"):
            return ["GEMINI_API_KEY"]
    return [default] if default else []


def check_credentials(agent: Agent, request: AgentRequest, installation_id: int | None = None) -> None:
    """Raise MissingCredentials before anything starts if a needed key is not stored."""
    missing = [name for name in agent.required_credentials(request.model) if not request.credentials.get(name)]
    if missing:
        raise MissingCredentials(agent.name, missing, installation_id)


def provider_env(request: AgentRequest, names: list[str]) -> dict[str, str]:
    """Only the keys this agent needs, plus provider base URLs: no other installation secret reaches it."""
    env = {name: request.credentials[name] for name in names if request.credentials.get(name)}
    for name in BASE_URL_VARS:
        if request.credentials.get(name):
            env[name] = request.credentials[name]
    return env


def agent_home(request: AgentRequest) -> dict[str, str]:
    """HOME and XDG dirs inside artifacts_dir, so CLIs keep their config and caches out of the workspace."""
    home = request.artifacts_dir / "home"
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
    }


def tail(text: str, limit: int = 2000) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def redact(result: AgentResult, secrets: list[str]) -> AgentResult:
    """The result with every secret value and token-shaped string removed, before it is stored or posted."""
    from dataclasses import replace

    from app.logs import scrub

    def clean(text: str | None) -> str | None:
        return scrub(text, secrets) if text is not None else None

    return replace(result, summary=clean(result.summary) or "", transcript=clean(result.transcript),
                   plan=clean(result.plan))


class CliAgent:
    """What adapters for an installed CLI share: the binary, how to tell it is there, and its key.

    `provider_key` names the one key a single-provider CLI reads; CLIs that reach many providers leave it
    None and need the key of the model's provider prefix ("openai/...", "anthropic/...").
    """

    name: str
    binary: str
    install_hint: str
    provider_key: str | None = None
    default_model: str | None = None
    default_key: str | None = "ANTHROPIC_API_KEY"

    def required_credentials(self, model: str | None) -> list[str]:
        if self.provider_key:
            return [self.provider_key]
        return credentials_for_model(model or self.default_model, default=self.default_key)

    def availability(self) -> Availability:
        return binary_availability(self.binary, self.install_hint)

    def executable(self) -> str:
        return find_binary(self.binary) or self.binary
