"""A repository's `.github/draftsmith.yml`: schema, line-numbered validation errors, and loading it from GitHub.

Everything here is pure except `load_repo_config`, which reads files from the DEFAULT branch only, as probot's
`context.config` does, so a pull request can never change the rules it runs under.

An invalid file never stops Draftsmith: each bad key is reported with its line and falls back to its default,
and the other keys still apply. Unknown keys are errors too, because a typo (`tset:`) would otherwise
silently do nothing.
"""

from __future__ import annotations

import asyncio
import base64
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CONFIG_PATH = ".github/draftsmith.yml"
AGENTS_FILE = "AGENTS.md"
# mini-swe-agent is the default because it installs from PyPI next to Draftsmith (no Node toolchain) and
# works with any model provider through LiteLLM; repositories pick another agent with `agent:`.
DEFAULT_AGENT = "mini-swe-agent"
MAX_CONFIG_BYTES = 64 * 1024
# Keys whose default must not silently replace a refused value: which agent and model run (the user's
# money), where (`runner`), and who may ask (`required_permission`).
BLOCKING_KEYS = frozenset({"agent", "command", "model", "runner", "required_permission"})
MAX_INSTRUCTIONS_CHARS = 32 * 1024
EXTENDS_KEY = "_extends"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_REPO_NAME = re.compile(r"^[A-Za-z0-9._-]+$")  # repository names may start with a dot (`.github`)
# git check-ref-format, the parts a prefix can break: no spaces, `..`, `~^:?*[\`, no leading/trailing `/`.
_BAD_REF = re.compile(r"(\.\.|[\s~^:?*\[\\]|@\{|//|^/|/$|^-|\.lock$|\.$)")


class NetworkConfig(BaseModel):
    """What a run's sandbox may reach besides the agent's model API: `network: off`, or hosts to allow."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True  # `network: off`: no egress at all but the model endpoint
    # Host entries the egress proxy understands (app.egress.policy.parse_allow_entry); bad ones are
    # dropped one by one with an error naming their line (see _drop_bad_allow_entries).
    allow: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _off_or_on(cls, value: Any) -> Any:
        # YAML reads `off`/`no` as false and `on` as true.
        if value is False or (isinstance(value, str) and value.strip().lower() in ("off", "none", "false")):
            return {"enabled": False}
        if value is True or (isinstance(value, str) and value.strip().lower() in ("on", "true")):
            return {}
        return value


class FixCIConfig(BaseModel):
    """`fix_ci`: when the repository's own CI fails on a Draftsmith PR, run the agent again to fix it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    max_attempts: int = Field(2, ge=1, le=10)  # follow-ups in a row, per PR, before handing over

    @model_validator(mode="before")
    @classmethod
    def _on_or_off(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value


class RepoConfig(BaseModel):
    """The effective configuration of one repository; every field has a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent: str = DEFAULT_AGENT
    model: str | None = None
    # Unset: the server's DRAFTSMITH_RUNNER decides (`effective_runner`).
    runner: Literal["sandbox", "actions", "kubernetes"] = "sandbox"
    trigger_label: str | None = None  # None: labels don't trigger tasks
    command_prefix: str = "/agent"
    # "none" is not offered: anyone on the internet could then spend the installation's model budget.
    required_permission: Literal["read", "triage", "write", "maintain", "admin"] = "write"
    allowed_bots: list[str] = Field(default_factory=list)
    setup: list[str] = Field(default_factory=list)
    test: str | None = None
    max_runtime_minutes: int = Field(30, ge=1, le=24 * 60)
    branch_prefix: str = "draftsmith"
    instructions_file: str | None = None  # AGENTS.md is always read as well
    on_busy: Literal["reply", "queue"] = "reply"
    command: str | None = None  # the shell line the `command` agent runs (contract key)
    requeue_dead_runs: bool | None = None  # None: the server's DRAFTSMITH_REQUEUE_DEAD_RUNS decides
    # Push the agent's work to the draft PR every N seconds while it runs (0: only at the end).
    # None: the server's DRAFTSMITH_CHECKPOINT_SECONDS decides.
    checkpoint_seconds: int | None = Field(None, ge=0, le=24 * 3600)
    squash: bool = False  # fold a run's checkpoint commits into one when it ends
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    fix_ci: FixCIConfig = Field(default_factory=FixCIConfig)
    # Agent tuning read by the adapters in app/agents.
    allowed_tools: list[str] | None = None
    max_turns: int | None = Field(None, ge=1)
    max_cost_usd: float | None = Field(None, gt=0)

    def effective_runner(self, server_default: str) -> str:
        """Where runs go: the file's `runner:` when it sets one, else the server's default."""
        return self.runner if "runner" in self.model_fields_set else server_default

    @field_validator("setup", mode="before")
    @classmethod
    def _one_setup_command_is_a_list_of_one(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("agent")
    @classmethod
    def _agent_name(cls, value: str) -> str:
        value = value.strip().lower()
        if not _NAME.match(value):
            raise ValueError("an agent name is letters, digits, '.', '_' or '-'")
        return value

    @field_validator("command_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.strip() or any(char.isspace() for char in value.strip()):
            raise ValueError("the command prefix must be one word, like /agent")
        if value.strip().startswith((">", "`", "#", "@", "-", "*")):
            raise ValueError("the command prefix can't start with Markdown syntax or @")
        return value.strip()

    @field_validator("branch_prefix")
    @classmethod
    def _branch_prefix(cls, value: str) -> str:
        if not value or _BAD_REF.search(value):
            raise ValueError("not usable in a git branch name")
        return value

    @field_validator("instructions_file")
    @classmethod
    def _relative_path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        cleaned = value.strip().removeprefix("./")
        if not cleaned or cleaned.startswith("/") or ".." in cleaned.split("/"):
            raise ValueError("must be a path inside the repository, like docs/agents.md")
        return cleaned

    @field_validator("allowed_bots")
    @classmethod
    def _bot_names(cls, value: list[str]) -> list[str]:
        return [name.strip() for name in value if name.strip()]

    @model_validator(mode="after")
    def _command_agent_needs_a_command(self) -> RepoConfig:
        if self.agent == "command" and not (self.command or "").strip():
            raise ValueError("`agent: command` needs a `command:` line to run")
        return self


@dataclass(frozen=True)
class ConfigError:
    """One problem in a config file; `line` is 1-based, None when no line applies."""

    line: int | None
    message: str
    path: str = CONFIG_PATH
    # The defaults cannot stand in: the file was unreadable, or a key that picks what runs, where, on whose
    # word or at whose cost was refused. A task must not start on a guess.
    blocking: bool = False

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class ConfigResult:
    config: RepoConfig
    errors: list[ConfigError] = field(default_factory=list)
    extends: str | None = None  # the `_extends:` value, resolved by load_repo_config


@dataclass(frozen=True)
class LoadedConfig:
    """What a handler or runner needs: the effective config, problems to report, extra agent instructions."""

    config: RepoConfig
    errors: list[ConfigError] = field(default_factory=list)
    instructions_text: str | None = None
    source: str = "defaults"  # "owner/repo:.github/draftsmith.yml", or "defaults" when there is no file

    @property
    def blocking(self) -> list[ConfigError]:
        """Errors that stop a task from starting until the file is fixed."""
        return [error for error in self.errors if error.blocking]


# --- pure parsing ---------------------------------------------------------------------------------


@dataclass
class _Document:
    path: str
    data: dict[str, Any]
    root: yaml.Node | None


def _read_document(text: str, path: str) -> tuple[_Document, list[ConfigError]]:
    if len(text.encode("utf-8", "replace")) > MAX_CONFIG_BYTES:
        return _Document(path, {}, None), [ConfigError(None, f"the file is over {MAX_CONFIG_BYTES // 1024} KB", path, blocking=True)]
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        return _Document(path, {}, None), [ConfigError(line, f"invalid YAML: {problem}", path, blocking=True)]
    except yaml.YAMLError as exc:
        return _Document(path, {}, None), [ConfigError(None, f"invalid YAML: {exc}", path, blocking=True)]
    if data is None:
        return _Document(path, {}, root), []
    if not isinstance(data, dict):
        return _Document(path, {}, root), [ConfigError(1, "the file must be a mapping of keys to values", path, blocking=True)]
    errors = [ConfigError(line, f"`{key}` is given more than once; the last one applies", path)
              for key, line in _duplicate_keys(root)]
    return _Document(path, data, root), errors


def _duplicate_keys(root: yaml.Node | None) -> list[tuple[str, int]]:
    if not isinstance(root, yaml.MappingNode):
        return []
    seen: set[Any] = set()
    duplicates = []
    for key_node, _ in root.value:
        if key_node.value in seen:
            duplicates.append((str(key_node.value), key_node.start_mark.line + 1))
        seen.add(key_node.value)
    return duplicates


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...], *, key: bool) -> int | None:
    """The line of the value (or of the key, for unknown keys) that pydantic's error location points at."""
    node = root
    line = None
    for depth, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in reversed(node.value):  # the last duplicate is the one that applies
                if key_node.value == str(part):
                    last = depth == len(loc) - 1
                    chosen = key_node if key and last else value_node
                    line, node = chosen.start_mark.line + 1, value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _message(error: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        known = ", ".join(sorted(RepoConfig.model_fields))
        close = difflib.get_close_matches(str(error["loc"][0]), RepoConfig.model_fields, n=1)
        hint = f"; did you mean `{close[0]}`?" if close else f" (known keys: {known})"
        return f"unknown key `{loc}`{hint}"
    text = error["msg"].removeprefix("Value error, ")
    return f"`{loc}`: {text}" if loc else text


def _drop_bad_allow_entries(documents: list[_Document], data: dict[str, Any]) -> tuple[dict[str, Any], list[ConfigError]]:
    """`network.allow` without its malformed entries, each reported on its line: the others still apply."""
    from app.egress.policy import parse_allow_entry

    network = data.get("network")
    if not isinstance(network, Mapping) or not isinstance(network.get("allow"), list):
        return data, []
    kept, errors = [], []
    for index, entry in enumerate(network["allow"]):
        try:
            if not isinstance(entry, str):
                raise ValueError(f"{entry!r} is not a host name; quote it if it is one")
            parse_allow_entry(entry)
        except ValueError as exc:
            path, line = _locate(documents, ("network", "allow", index), key=False)
            errors.append(ConfigError(line, f"`network.allow`: {exc}; the other entries apply", path))
        else:
            kept.append(entry)
    return {**data, "network": {**network, "allow": kept}}, errors


def _validate(documents: list[_Document], data: dict[str, Any]) -> tuple[RepoConfig, list[ConfigError]]:
    """Validate merged data; drop each bad key (its default applies) and try again with the rest."""
    data = {key: value for key, value in data.items() if key != EXTENDS_KEY}
    data, errors = _drop_bad_allow_entries(documents, data)
    for _ in range(len(data) + 1):
        try:
            return RepoConfig.model_validate(data), errors
        except ValidationError as exc:
            bad_keys = set()
            for error in exc.errors():
                loc = tuple(error["loc"])
                if not loc:  # a whole-model rule (agent: command without command): blame `agent`
                    loc = ("agent",)
                bad_keys.add(loc[0])
                path, line = _locate(documents, loc, key=error["type"] == "extra_forbidden")
                errors.append(ConfigError(line, _message({**error, "loc": tuple(error["loc"])}), path,
                                          blocking=loc[0] in BLOCKING_KEYS))
            data = {key: value for key, value in data.items() if key not in bad_keys}
    return RepoConfig(), errors


def _locate(documents: list[_Document], loc: tuple[Any, ...], *, key: bool) -> tuple[str, int | None]:
    # The overriding (last) document wins, so look there first.
    for document in reversed(documents):
        if loc and loc[0] in document.data:
            return document.path, _line_of(document.root, loc, key=key)
    return documents[-1].path, None


def parse_config(text: str, path: str = CONFIG_PATH) -> ConfigResult:
    """Validate one config file's text. Never raises; problems come back as errors with line numbers."""
    document, errors = _read_document(text or "", path)
    config, validation_errors = _validate([document], document.data)
    extends = document.data.get(EXTENDS_KEY)
    return ConfigResult(config, _in_file_order(errors + validation_errors), extends if isinstance(extends, str) else None)


def _in_file_order(errors: list[ConfigError]) -> list[ConfigError]:
    return sorted(errors, key=lambda error: (error.path, error.line or 0))


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`: mappings merge key by key, anything else (lists too) is replaced.

    Lists replace rather than concatenate so a repository can drop a shared setup step.
    """
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    merged.pop(EXTENDS_KEY, None)
    return merged


@dataclass(frozen=True)
class ExtendsTarget:
    owner: str
    repo: str
    path: str = CONFIG_PATH


def parse_extends(value: str, owner: str) -> ExtendsTarget | None:
    """`.github`, `repo`, `org/repo`, each optionally with `:path` (probot's `_extends` forms)."""
    value = (value or "").strip()
    target, _, path = value.partition(":")
    path = path.strip() or CONFIG_PATH
    if "/" in target:
        target_owner, _, repo = target.partition("/")
    else:
        target_owner, repo = owner, target
    if not _NAME.match(target_owner) or not _REPO_NAME.match(repo) or repo in (".", ".."):
        return None
    if path.startswith("/") or ".." in path.split("/"):
        return None
    return ExtendsTarget(target_owner, repo, path)


def combine(base: tuple[str, str] | None, own: tuple[str, str]) -> ConfigResult:
    """Validate `own` (path, text) on top of `base` (path, text) from `_extends`; errors name their file."""
    own_document, errors = _read_document(own[1], own[0])
    documents = [own_document]
    data = own_document.data
    if base is not None:
        base_document, base_errors = _read_document(base[1], base[0])
        errors = base_errors + errors
        documents = [base_document, own_document]
        data = merge(base_document.data, own_document.data)
    config, validation_errors = _validate(documents, data)
    extends = own_document.data.get(EXTENDS_KEY)
    return ConfigResult(config, _in_file_order(errors + validation_errors), extends if isinstance(extends, str) else None)


# --- the one I/O function -------------------------------------------------------------------------


async def _read_file(gh: Any, owner: str, repo: str, path: str, ref: str | None) -> str | None:
    """A text file's content, or None when it (or the repository) doesn't exist."""
    from githubkit.exception import RequestFailed

    try:
        if ref is None:
            resp = await gh.rest.repos.async_get_content(owner, repo, path)
        else:
            resp = await gh.rest.repos.async_get_content(owner, repo, path, ref=ref)
    except RequestFailed as exc:
        if exc.response.status_code == 404:
            return None
        raise
    # resp.json(): githubkit's typed models are stricter than some servers' answers (test-harness notes).
    data = resp.json()
    if not isinstance(data, dict) or data.get("type") != "file":
        return None
    content = data.get("content") or ""
    if data.get("encoding", "base64") == "base64":
        return base64.b64decode(content).decode("utf-8", "replace")
    return content


async def load_repo_config(gh: Any, owner: str, repo: str, default_branch: str | None) -> LoadedConfig:
    """Read config and agent instructions from the default branch; a missing file means defaults.

    Like probot, a repository without its own file uses the owner's `.github` repository's file, and a
    file with `_extends:` is laid over the file it names (one level: what that file extends is ignored).
    """
    own_path = f"{owner}/{repo}:{CONFIG_PATH}"
    # AGENTS.md is read whatever the config says, so fetch it alongside the config: one round trip less.
    agents_md = asyncio.ensure_future(_read_file(gh, owner, repo, AGENTS_FILE, default_branch))
    try:
        return await _load(gh, owner, repo, default_branch, own_path, agents_md)
    finally:
        if not agents_md.done():
            agents_md.cancel()


async def _load(gh: Any, owner: str, repo: str, default_branch: str | None, own_path: str,
                agents_md: asyncio.Future) -> LoadedConfig:
    text = await _read_file(gh, owner, repo, CONFIG_PATH, default_branch)
    source = own_path
    errors: list[ConfigError] = []
    if text is None and repo != ".github":
        shared = await _read_file(gh, owner, ".github", CONFIG_PATH, None)
        if shared is not None:
            text, source = shared, f"{owner}/.github:{CONFIG_PATH}"
    if text is None:
        result = ConfigResult(RepoConfig())
        source = "defaults"
    else:
        base = None
        first = parse_config(text, source)
        if first.extends:
            target = parse_extends(first.extends, owner)
            if target is None:
                errors.append(ConfigError(_extends_line(text), f"`_extends: {first.extends}` is not a repository", source))
            else:
                base_text = await _read_file(gh, target.owner, target.repo, target.path, None)
                if base_text is None:
                    errors.append(ConfigError(
                        _extends_line(text),
                        f"`_extends`: {target.owner}/{target.repo}:{target.path} was not found", source))
                else:
                    base = (f"{target.owner}/{target.repo}:{target.path}", base_text)
        result = combine(base, (source, text))
    errors.extend(result.errors)
    config = result.config
    instructions = await _instructions(gh, owner, repo, default_branch, config, errors, source, agents_md)
    return LoadedConfig(config, errors, instructions, source)


def _extends_line(text: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(EXTENDS_KEY):
            return number
    return None


async def _instructions(
    gh: Any, owner: str, repo: str, ref: str | None, config: RepoConfig, errors: list[ConfigError], source: str,
    agents_md_read: asyncio.Future,
) -> str | None:
    parts = []
    agents_md = await agents_md_read
    if agents_md and agents_md.strip():
        parts.append(agents_md.strip()[:MAX_INSTRUCTIONS_CHARS])
    if config.instructions_file and config.instructions_file != AGENTS_FILE:
        extra = await _read_file(gh, owner, repo, config.instructions_file, ref)
        if extra is None:
            errors.append(ConfigError(None, f"`instructions_file`: {config.instructions_file} was not found "
                                            f"on the default branch", source))
        elif extra.strip():
            parts.append(extra.strip()[:MAX_INSTRUCTIONS_CHARS])
    return "\n\n".join(parts) if parts else None
