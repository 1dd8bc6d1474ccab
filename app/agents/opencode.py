"""opencode adapter: `opencode run --format json`, JSONL events with per-step tokens and cost."""

from __future__ import annotations

import json

from app.agents.base import (
    BUN_MEMORY_ENV,
    CliAgent,
    AgentRequest,
    AgentResult,
    Invocation,
    Usage,
    agent_home,
    provider_env,
    tail,
)

# Installed on a worker or in the sandbox image with npm, at the version versions.py pins:
#   npm install -g opencode-ai
INSTALL_HINT = "npm install -g opencode-ai"

# CLI: https://opencode.ai/docs/cli/#run ; `run` is non-interactive and approves tools itself.
# `--format json` prints events: {"type": "step_start"}, {"type": "text", "part": {"text"}},
# {"type": "tool_use", "part": {...}}, {"type": "step_finish", "part": {"cost", "tokens": {"input",
# "output", "reasoning", "cache": {"read", "write"}}}}, {"type": "error", "error": {...}}.
# `--agent plan` is its built-in read-only planning agent. Models are "provider/model".


# Measured with the real CLI (shared/notes/agent-clis.md): its own config (OPENCODE_CONFIG) declares an
# OpenAI-compatible server as a provider of ours (the SDK package is bundled, nothing is installed at run
# time), approves edits and shell for `run`, and turns off autoupdate and sharing; the variables below stop
# its model-list, plugin, LSP and Claude Code look-ups. The key stays in the environment: the file names it.
CONFIG_FILE = "opencode.json"
PROVIDER = "draftsmith"
_QUIET = ("OPENCODE_DISABLE_MODELS_FETCH", "OPENCODE_DISABLE_AUTOUPDATE", "OPENCODE_DISABLE_DEFAULT_PLUGINS",
          "OPENCODE_DISABLE_LSP_DOWNLOAD", "OPENCODE_DISABLE_SHARE", "OPENCODE_DISABLE_CLAUDE_CODE")


def _config(model: str | None, base_url: str | None) -> tuple[dict, str | None]:
    """opencode.json, and the model to ask for: an "openai/M" model with a stored base URL is M on our
    OpenAI-compatible provider at that URL (OpenCode's own openai provider speaks the Responses API)."""
    config: dict = {"$schema": "https://opencode.ai/config.json", "autoupdate": False, "share": "disabled",
                    "permission": {"edit": "allow", "bash": "allow"}}
    if base_url and model and model.startswith("openai/"):
        name = model.split("/", 1)[1]
        config["provider"] = {PROVIDER: {
            "npm": "@ai-sdk/openai-compatible", "name": "OpenAI-compatible",
            "options": {"baseURL": base_url, "apiKey": "{env:OPENAI_API_KEY}"},
            "models": {name: {"name": name, "tool_call": True}},
        }}
        model = f"{PROVIDER}/{name}"
    if model:
        config["model"] = config["small_model"] = model
    return config, model


class OpenCode(CliAgent):
    name = "opencode"
    binary = "opencode"
    install_hint = INSTALL_HINT

    def prepare(self, request: AgentRequest) -> Invocation:
        base_url = request.credentials.get("OPENAI_BASE_URL") or request.credentials.get("OPENAI_API_BASE")
        config, model = _config(request.model, base_url)
        argv = [self.executable(), "run", "--format", "json"]
        if model:
            argv += ["--model", model]
        argv += ["--agent", "plan" if request.plan_mode else "build"]
        argv.append(request.prompt)
        env = {**agent_home(request), **provider_env(request, self.required_credentials(request.model))}
        env.update({name: "true" for name in _QUIET}, **BUN_MEMORY_ENV)
        env["OPENCODE_CONFIG"] = str(request.artifacts_dir / CONFIG_FILE)
        return Invocation(argv=argv, env=env, files={CONFIG_FILE: json.dumps(config, indent=2)}, stdin="",
                          cwd=request.workspace, workspace_writable=not request.plan_mode)

    def parse_result(self, request: AgentRequest, exit_code: int, stdout: str, stderr: str) -> AgentResult:
        texts: list[str] = []
        errors: list[str] = []
        input_tokens = output_tokens = 0
        cost = 0.0
        steps = 0
        for line in stdout.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            part = event.get("part") or {}
            kind = event.get("type")
            if kind == "text" and part.get("text"):
                texts.append(str(part["text"]))
            elif kind == "step_finish":
                steps += 1
                tokens = part.get("tokens") or {}
                cache = tokens.get("cache") or {}
                input_tokens += int(tokens.get("input") or 0) + int(cache.get("read") or 0) + int(cache.get("write") or 0)
                output_tokens += int(tokens.get("output") or 0) + int(tokens.get("reasoning") or 0)
                cost += float(part.get("cost") or 0)
            elif kind == "error":
                error = event.get("error") or {}
                data = error.get("data") if isinstance(error, dict) else None
                errors.append(str((data or {}).get("message") or (error.get("name") if isinstance(error, dict) else error)))
        summary = texts[-1].strip() if texts else ""
        success = exit_code == 0 and not errors and steps > 0
        if not success:
            reason = "; ".join(errors) or f"opencode exited {exit_code}: {tail(stderr, 500)}"
            summary = f"{summary}\n\n{reason}".strip()
        usage = Usage(input_tokens if steps else None, output_tokens if steps else None, cost if steps else None)
        return AgentResult(success, summary, usage, transcript=stdout or None,
                           plan=summary if request.plan_mode and success else None)
