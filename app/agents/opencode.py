"""opencode adapter: `opencode run --format json`, JSONL events with per-step tokens and cost."""

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

# Installed on a worker or in the sandbox image with npm (or its release binary):
#   npm install -g opencode-ai
INSTALL_HINT = "npm install -g opencode-ai"

# CLI: https://opencode.ai/docs/cli/#run ; `run` is non-interactive and approves tools itself.
# `--format json` prints events: {"type": "step_start"}, {"type": "text", "part": {"text"}},
# {"type": "tool_use", "part": {...}}, {"type": "step_finish", "part": {"cost", "tokens": {"input",
# "output", "reasoning", "cache": {"read", "write"}}}}, {"type": "error", "error": {...}}.
# `--agent plan` is its built-in read-only planning agent. Models are "provider/model".


class OpenCode(CliAgent):
    name = "opencode"
    binary = "opencode"
    install_hint = INSTALL_HINT

    def prepare(self, request: AgentRequest) -> Invocation:
        argv = [self.executable(), "run", "--format", "json"]
        if request.model:
            argv += ["--model", request.model]
        argv += ["--agent", "plan" if request.plan_mode else "build"]
        argv.append(request.prompt)
        env = {**agent_home(request), **provider_env(request, self.required_credentials(request.model))}
        env["OPENCODE_DISABLE_AUTOUPDATE"] = "1"
        return Invocation(argv=argv, env=env, stdin="", cwd=request.workspace,
                          workspace_writable=not request.plan_mode)

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
