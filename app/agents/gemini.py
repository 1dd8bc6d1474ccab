"""Gemini CLI adapter: `gemini -p ... --output-format json`, one JSON object with response and stats."""

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

# Installed on a worker or in the sandbox image with npm (Node 20+), at the version versions.py pins:
#   npm install -g @google/gemini-cli
INSTALL_HINT = "npm install -g @google/gemini-cli (needs Node.js 20+)"

# Headless mode: https://geminicli.com/docs/cli/headless/
# `--output-format json` prints {"response": "...", "stats": {"models": {"<model>": {"api": {...},
# "tokens": {"prompt", "candidates", "total", "cached", "thoughts", "tool"}}}, "tools": {...},
# "files": {...}}, "error": {"type", "message", "code"}?}. Exit codes: 0 ok, 1 error, 42 input, 53 turns.
# `--approval-mode auto_edit` approves edits only; `yolo` approves shell too (the sandbox contains it);
# plan mode uses `default`, which in headless mode refuses every tool that would need approval.


# Measured with the real CLI (shared/notes/agent-clis.md): without `selectedType` in its settings it exits
# 41 ("Invalid auth method selected"); in an untrusted folder it silently ignores the approval mode; the
# settings also switch off its telemetry and usage statistics.
SETTINGS_FILE = "home/.gemini/settings.json"
SETTINGS = {
    "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
    "telemetry": {"enabled": False},
    "privacy": {"usageStatisticsEnabled": False},
}


class Gemini(CliAgent):
    name = "gemini"
    binary = "gemini"
    install_hint = INSTALL_HINT
    provider_key = "GEMINI_API_KEY"

    def prepare(self, request: AgentRequest) -> Invocation:
        argv = [self.executable(), "--output-format", "json",
                "--approval-mode", "default" if request.plan_mode else "yolo"]
        if request.model:
            argv += ["--model", request.model]
        # Headless mode reads the prompt from stdin and appends -p's text; the instruction is all on stdin.
        argv += ["-p", "Follow the task description given on standard input."]
        env = {**agent_home(request), **provider_env(request, self.required_credentials(request.model))}
        env["GEMINI_CLI_TRUST_WORKSPACE"] = "true"
        # Node reserves 8 GiB of address space per WebAssembly memory for its bounds-check trap handler,
        # more than the sandbox's address-space limit: without this the CLI dies at start ("WebAssembly
        # .instantiate(): Out of memory"). https://nodejs.org/api/cli.html#--disable-wasm-trap-handler
        env["NODE_OPTIONS"] = "--disable-wasm-trap-handler"
        return Invocation(argv=argv, env=env, files={SETTINGS_FILE: json.dumps(SETTINGS, indent=2)},
                          stdin=request.prompt, cwd=request.workspace, workspace_writable=not request.plan_mode)

    def parse_result(self, request: AgentRequest, exit_code: int, stdout: str, stderr: str) -> AgentResult:
        try:
            data = json.loads(stdout[stdout.find("{"):]) if "{" in stdout else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return AgentResult(False, f"gemini exited {exit_code} without JSON output: {tail(stderr or stdout, 500)}",
                               transcript=stdout or None)
        input_tokens = output_tokens = 0
        models = ((data.get("stats") or {}).get("models") or {})
        for model_stats in models.values():
            tokens = (model_stats or {}).get("tokens") or {}
            input_tokens += int(tokens.get("prompt") or 0)
            output_tokens += int(tokens.get("candidates") or 0) + int(tokens.get("thoughts") or 0)
        usage = Usage(input_tokens if models else None, output_tokens if models else None, None)
        error = data.get("error")
        text = str(data.get("response") or "")
        success = exit_code == 0 and not error
        if not success:
            message = (error or {}).get("message") if isinstance(error, dict) else error
            text = f"{text}\n\n{message or f'gemini exited {exit_code}'}".strip()
        return AgentResult(success, text, usage, transcript=stdout,
                           plan=text if request.plan_mode and success else None)
