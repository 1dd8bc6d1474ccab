"""Claude Code adapter: `claude -p` in headless mode, JSON result on stdout."""

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
    config_value,
    provider_env,
    tail,
)

# Installed on a worker or in the sandbox image with npm (Node 18+), at the version app/agents/versions.py pins:
#   npm install -g @anthropic-ai/claude-code
INSTALL_HINT = "npm install -g @anthropic-ai/claude-code (needs Node.js 18+)"

# Headless mode and its output: https://docs.claude.com/en/docs/claude-code/headless
# `--output-format json` prints one object: {"type": "result", "subtype": "success", "is_error": false,
# "result": "...", "total_cost_usd": 0.01, "usage": {"input_tokens": ..., "output_tokens": ...}, ...}.
# Permission modes (acceptEdits, plan): https://docs.claude.com/en/docs/claude-code/iam#permission-modes
DEFAULT_ALLOWED_TOOLS = ["Read", "Edit", "Write", "MultiEdit", "Glob", "Grep", "LS", "Bash"]
# We commit through the GitHub API; the agent must not commit or push itself.
DISALLOWED_TOOLS = ["Bash(git commit:*)", "Bash(git push:*)"]


class ClaudeCode(CliAgent):
    name = "claude-code"
    binary = "claude"
    install_hint = INSTALL_HINT
    provider_key = "ANTHROPIC_API_KEY"

    def prepare(self, request: AgentRequest) -> Invocation:
        argv = [self.executable(), "-p", "--output-format", "json"]
        if request.model:
            argv += ["--model", request.model]
        if request.plan_mode:
            argv += ["--permission-mode", "plan"]
        else:
            tools = config_value(request.config, "allowed_tools") or DEFAULT_ALLOWED_TOOLS
            argv += ["--permission-mode", "acceptEdits", "--allowedTools", ",".join(tools)]
            argv += ["--disallowedTools", ",".join(DISALLOWED_TOOLS)]
        max_turns = config_value(request.config, "max_turns")
        if max_turns:
            argv += ["--max-turns", str(max_turns)]
        env = {**agent_home(request), **provider_env(request, self.required_credentials(request.model))}
        # No telemetry, error reports, update checks or title requests from inside the sandbox (measured:
        # with these set, the real CLI makes no request but the model calls).
        env.update(DISABLE_AUTOUPDATER="1", DISABLE_TELEMETRY="1", DISABLE_ERROR_REPORTING="1",
                   CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", **BUN_MEMORY_ENV)
        # The prompt goes on stdin: it can be long and argv is visible in the process table.
        return Invocation(argv=argv, env=env, stdin=request.prompt, cwd=request.workspace,
                          workspace_writable=not request.plan_mode)

    def parse_result(self, request: AgentRequest, exit_code: int, stdout: str, stderr: str) -> AgentResult:
        data = _last_result_object(stdout)
        if data is None:
            return AgentResult(False, f"claude exited {exit_code} without a JSON result: {tail(stderr or stdout, 500)}",
                               transcript=stdout or None)
        usage_data = data.get("usage") or {}
        usage = Usage(
            input_tokens=_sum_ints(usage_data, "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"),
            output_tokens=usage_data.get("output_tokens"),
            cost_usd=data.get("total_cost_usd", data.get("cost_usd")),
        )
        text = str(data.get("result") or "")
        success = exit_code == 0 and not data.get("is_error") and data.get("subtype", "success") == "success"
        if not success and not text:
            text = f"claude ended with {data.get('subtype', 'an error')} (exit {exit_code})"
        return AgentResult(success, text, usage, transcript=stdout,
                           plan=text if request.plan_mode and success else None)


def _last_result_object(stdout: str) -> dict | None:
    """The result object: the whole stdout for `json`, the last `type: result` line for `stream-json`."""
    try:
        data = json.loads(stdout)
        if isinstance(data, dict):
            return data
    except ValueError:
        pass
    for line in reversed(stdout.splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("type") == "result":
            return data
    return None


def _sum_ints(data: dict, *keys: str) -> int | None:
    values = [data[k] for k in keys if isinstance(data.get(k), int)]
    return sum(values) if values else None
