"""Codex CLI adapter: `codex exec --json`, JSONL events on stdout."""

from __future__ import annotations

import json

from app.agents.base import (
    CliAgent,
    AgentRequest,
    AgentResult,
    Invocation,
    Usage,
    agent_home,
    provider_env,
    tail,
)

# Installed on a worker or in the sandbox image with npm (Node 18+), at the version versions.py pins:
#   npm install -g @openai/codex
INSTALL_HINT = "npm install -g @openai/codex"

# Non-interactive mode: https://developers.openai.com/codex/noninteractive
# `--json` prints JSONL events: thread.started, turn.started, item.started/item.completed (items of type
# agent_message, reasoning, command_execution, file_change), turn.completed {usage: {input_tokens,
# cached_input_tokens, output_tokens}}, turn.failed {error: {message}}, error {message}.
# Measured with the real CLI (shared/notes/agent-clis.md): it speaks only the Responses API
# (`wire_api = "chat"` is refused at config load), so a base URL goes into a provider of our own in
# $CODEX_HOME/config.toml; the settings below stop its update, analytics and plugin lookups. Its own
# Landlock sandbox cannot start inside ours (and is not needed there): our sandbox binds the workspace
# read-only in plan mode, and the prompt says to change nothing.
CONFIG_FILE = "home/.codex/config.toml"
PROVIDER = "draftsmith"
OPENAI_API = "https://api.openai.com/v1"


def _config_toml(base_url: str) -> str:
    return "\n".join([
        f'model_provider = "{PROVIDER}"',
        "check_for_update_on_startup = false",
        "",
        f"[model_providers.{PROVIDER}]",
        f'name = "{PROVIDER}"',
        f"base_url = {json.dumps(base_url)}",  # a JSON string is a valid TOML basic string
        'env_key = "OPENAI_API_KEY"',
        'wire_api = "responses"',
        "",
        "[analytics]",
        "enabled = false",
        "",
        "[otel]",
        'exporter = "none"',
        'metrics_exporter = "none"',
        "",
        "[features]",
        "apps = false",
        "plugins = false",
        "",
    ])


class Codex(CliAgent):
    name = "codex"
    binary = "codex"
    install_hint = INSTALL_HINT
    provider_key = "OPENAI_API_KEY"

    def prepare(self, request: AgentRequest) -> Invocation:
        argv = [self.executable(), "exec", "--json", "--skip-git-repo-check",
                "--dangerously-bypass-approvals-and-sandbox", "--cd", str(request.workspace)]
        if request.model:
            argv += ["--model", request.model]
        argv.append("-")  # read the prompt from stdin
        env = {**agent_home(request), **provider_env(request, self.required_credentials(request.model))}
        env["CODEX_HOME"] = str(request.artifacts_dir / "home" / ".codex")
        base_url = request.credentials.get("OPENAI_BASE_URL") or request.credentials.get("OPENAI_API_BASE")
        files = {CONFIG_FILE: _config_toml(base_url or OPENAI_API)}
        return Invocation(argv=argv, env=env, files=files, stdin=request.prompt, cwd=request.workspace,
                          workspace_writable=not request.plan_mode)

    def parse_result(self, request: AgentRequest, exit_code: int, stdout: str, stderr: str) -> AgentResult:
        messages: list[str] = []
        errors: list[str] = []
        input_tokens = output_tokens = 0
        saw_usage = completed = False
        for line in stdout.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            kind = event.get("type")
            if kind == "item.completed":
                item = event.get("item") or {}
                if (item.get("type") or item.get("item_type")) in ("agent_message", "assistant_message"):
                    messages.append(str(item.get("text", "")))
            elif kind == "turn.completed":
                completed = True
                usage = event.get("usage") or {}
                saw_usage = True
                input_tokens += int(usage.get("input_tokens") or 0)
                output_tokens += int(usage.get("output_tokens") or 0)
            elif kind == "turn.failed":
                errors.append(str((event.get("error") or {}).get("message", "turn failed")))
            elif kind == "error":
                errors.append(str(event.get("message", "error")))
        success = exit_code == 0 and completed and not errors
        summary = messages[-1] if messages else ""
        if not success:
            reason = "; ".join(errors) or f"codex exited {exit_code}: {tail(stderr, 500)}"
            summary = f"{summary}\n\n{reason}".strip() if summary else reason
        usage = Usage(input_tokens if saw_usage else None, output_tokens if saw_usage else None, None)
        return AgentResult(success, summary, usage, transcript=stdout or None,
                           plan=summary if request.plan_mode and success else None)
