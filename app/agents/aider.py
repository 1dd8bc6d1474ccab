"""aider adapter: `aider --message-file ... --yes-always --no-auto-commits`, usage from its "Tokens:" lines."""

from __future__ import annotations

import re
from pathlib import Path

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

# Installed on a worker or in the sandbox image into its own venv (it pins its own litellm), at the version
# app/agents/versions.py pins:
#   uv tool install aider-chat   (or: uv venv /opt/agents/aider && uv pip install ... aider-chat)
INSTALL_HINT = "uv tool install aider-chat (or pip install aider-chat in its own venv)"

# Scripting aider: https://aider.chat/docs/scripting.html ; options: https://aider.chat/docs/config/options.html
# After each reply it prints "Tokens: 2.3k sent, 145 received. Cost: $0.0091 message, $0.0091 session."
# `--chat-mode ask` answers without editing files: our plan mode.
PROMPT_FILE = "prompt.md"
HISTORY_FILE = "aider.chat.history.md"
_TOKENS = re.compile(r"Tokens:\s*([\d.,]+[kKmM]?)\s*sent(?:[^,]*)?,\s*([\d.,]+[kKmM]?)\s*received", re.I)
_COST = re.compile(r"Cost:\s*\$([\d.,]+)\s*message,\s*\$([\d.,]+)\s*session", re.I)


class Aider(CliAgent):
    name = "aider"
    binary = "aider"
    install_hint = INSTALL_HINT

    def prepare(self, request: AgentRequest) -> Invocation:
        artifacts = request.artifacts_dir
        argv = [self.executable(),
                "--message-file", str(artifacts / PROMPT_FILE),
                "--yes-always", "--no-auto-commits", "--no-dirty-commits", "--no-gitignore",
                "--no-stream", "--no-pretty", "--no-fancy-input", "--no-check-update", "--analytics-disable",
                "--no-show-model-warnings",
                # Otherwise, on a fresh HOME, --yes-always answers "see what's new?" and it opens a browser.
                "--no-show-release-notes",
                # Its repo map keeps a cache in .aider.tags.cache.v4/ at the root of the checkout, with no
                # option to move it: the checkpoints would commit it to the PR. Without the map, aider
                # still gets the files the prompt names and asks to add others.
                "--map-tokens", "0",
                # Its history files would otherwise land in the checkout and be committed.
                "--chat-history-file", str(artifacts / HISTORY_FILE),
                "--input-history-file", str(artifacts / "aider.input.history")]
        if request.model:
            argv += ["--model", request.model]
        if request.plan_mode:
            argv += ["--chat-mode", "ask"]
        env = {**agent_home(request), **provider_env(request, self.required_credentials(request.model))}
        return Invocation(argv=argv, env=env, files={PROMPT_FILE: request.prompt}, stdin="", cwd=request.workspace,
                          workspace_writable=not request.plan_mode)

    def parse_result(self, request: AgentRequest, exit_code: int, stdout: str, stderr: str) -> AgentResult:
        sent = received = 0
        saw_tokens = False
        cost: float | None = None
        reply_lines = []
        for line in stdout.splitlines():
            tokens = _TOKENS.search(line)
            if tokens:
                saw_tokens = True
                sent += _count(tokens.group(1))
                received += _count(tokens.group(2))
                price = _COST.search(line)
                if price:
                    cost = float(price.group(2).replace(",", ""))  # session total so far
                continue
            reply_lines.append(line)
        # Its stdout mixes set-up chatter (banner, git warnings, failed price-list fetch) into the reply;
        # the chat history file keeps the reply apart, as the lines not quoted with "> ".
        reply = _last_reply(request.artifacts_dir / HISTORY_FILE) or "\n".join(reply_lines).strip()
        success = exit_code == 0
        summary = tail(reply, 3000) if success else f"aider exited {exit_code}: {tail(stderr or reply, 800)}"
        return AgentResult(success, summary,
                           Usage(sent if saw_tokens else None, received if saw_tokens else None, cost),
                           transcript=stdout or None, plan=reply if request.plan_mode and success else None)


def _last_reply(history: Path) -> str | None:
    """The model's words after the last user message (`#### ` lines) in aider's chat history file."""
    try:
        lines = history.read_text().splitlines()
    except OSError:
        return None
    asked = [i for i, line in enumerate(lines) if line.startswith("#### ")]
    if not asked:
        return None
    reply = [line for line in lines[asked[-1] + 1:] if not line.startswith(("> ", "#### ")) and line != ">"]
    return "\n".join(reply).strip() or None


def _count(value: str) -> int:
    value = value.replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(value[-1].lower(), 1)
    number = float(value[:-1] if scale != 1 else value)
    return int(round(number * scale))
