"""The one pin of each real agent CLI: the tests' installer and `draftsmith agents install` read it."""

from __future__ import annotations

# NAME -> (registry, package, version). "npm" packages install under a prefix of their own
# (`npm install -g --prefix DIR package@version`), "pypi" ones into a venv of their own, so no CLI's
# dependencies ever meet ours or another CLI's. Versions are the ones proven end to end by
# tests/e2e/test_real_clis.py (shared/notes/agent-clis.md lists how each was measured).
PINS: dict[str, tuple[str, str, str]] = {
    "claude-code": ("npm", "@anthropic-ai/claude-code", "2.1.197"),
    "codex": ("npm", "@openai/codex", "0.171.0"),
    "gemini": ("npm", "@google/gemini-cli", "0.61.0"),
    "opencode": ("npm", "opencode-ai", "1.18.33"),
    "aider": ("pypi", "aider-chat", "0.86.2"),
    "mini-swe-agent": ("pypi", "mini-swe-agent", "2.4.6"),
}

# Packages a CLI needs beside its own but does not depend on: mini-swe-agent's litellm imports `mcp`
# when tools are passed, and without it every model call fails and mini retries forever.
COMPANIONS: dict[str, list[str]] = {
    "mini-swe-agent": ["mcp"],
}
