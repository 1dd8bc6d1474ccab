"""Output samples in each CLI's documented format (links in the adapter modules)."""

from __future__ import annotations

import json

CLAUDE_OK = json.dumps({
    "type": "result", "subtype": "success", "is_error": False, "duration_ms": 12873, "duration_api_ms": 11020,
    "num_turns": 6, "result": "Fixed the typo in README.md and ran the tests.", "session_id": "4f1c0c1e",
    "total_cost_usd": 0.0421,
    "usage": {"input_tokens": 1200, "cache_creation_input_tokens": 300, "cache_read_input_tokens": 500,
              "output_tokens": 450, "server_tool_use": {"web_search_requests": 0}, "service_tier": "standard"},
}) + "\n"

CLAUDE_ERROR = json.dumps({
    "type": "result", "subtype": "error_max_turns", "is_error": True, "num_turns": 10,
    "session_id": "4f1c0c1e", "total_cost_usd": 0.31, "usage": {"input_tokens": 9000, "output_tokens": 800},
}) + "\n"

CODEX_OK = "\n".join(json.dumps(e) for e in [
    {"type": "thread.started", "thread_id": "0199a213-81c0-7800-8aa1-bbab2a035a53"},
    {"type": "turn.started"},
    {"type": "item.completed", "item": {"id": "item_0", "type": "reasoning", "text": "**Looking at README**"}},
    {"type": "item.completed", "item": {"id": "item_1", "type": "command_execution", "command": "bash -lc ls",
                                        "aggregated_output": "README.md\n", "exit_code": 0, "status": "completed"}},
    {"type": "item.completed", "item": {"id": "item_2", "type": "file_change",
                                        "changes": [{"path": "README.md", "kind": "update"}], "status": "completed"}},
    {"type": "item.completed", "item": {"id": "item_3", "type": "agent_message", "text": "Fixed the typo."}},
    {"type": "turn.completed", "usage": {"input_tokens": 24763, "cached_input_tokens": 24448, "output_tokens": 122}},
]) + "\n"

CODEX_FAILED = "\n".join(json.dumps(e) for e in [
    {"type": "thread.started", "thread_id": "t1"},
    {"type": "turn.started"},
    {"type": "error", "message": "stream error: unexpected status 401 Unauthorized"},
    {"type": "turn.failed", "error": {"message": "stream error: unexpected status 401 Unauthorized"}},
]) + "\n"

AIDER_OK = """\
Aider v0.86.2
Model: anthropic/claude-sonnet-4-5 with diff edit format
Git repo: .git with 3 files
Repo-map: using 1024 tokens, auto refresh

I'll fix the typo in README.md.

README.md
<<<<<<< SEARCH
teh
=======
the
>>>>>>> REPLACE

Tokens: 2.3k sent, 145 received. Cost: $0.0091 message, $0.0091 session.
Applied edit to README.md
Tokens: 1.1k sent, 80 received. Cost: $0.0050 message, $0.0141 session.
"""

GEMINI_OK = json.dumps({
    "response": "Fixed the typo in README.md.",
    "stats": {
        "models": {"gemini-2.5-pro": {"api": {"totalRequests": 2, "totalErrors": 0, "totalLatencyMs": 5053},
                                      "tokens": {"prompt": 24939, "candidates": 20, "total": 25113, "cached": 21263,
                                                 "thoughts": 154, "tool": 0}}},
        "tools": {"totalCalls": 1, "totalSuccess": 1, "totalFail": 0, "totalDurationMs": 1881,
                  "totalDecisions": {"accept": 0, "reject": 0, "modify": 0, "auto_accept": 1}, "byName": {}},
        "files": {"totalLinesAdded": 1, "totalLinesRemoved": 1},
    },
}, indent=2) + "\n"

GEMINI_ERROR = json.dumps({
    "response": None, "stats": {"models": {}},
    "error": {"type": "ApiError", "message": "API key not valid. Please pass a valid API key.", "code": 1},
}) + "\n"

OPENCODE_OK = "\n".join(json.dumps(e) for e in [
    {"type": "step_start", "timestamp": 1760000000000, "sessionID": "ses_1",
     "part": {"type": "step-start", "snapshot": "abc"}},
    {"type": "text", "timestamp": 1760000000100, "sessionID": "ses_1",
     "part": {"type": "text", "text": "Looking at README.md."}},
    {"type": "tool_use", "timestamp": 1760000000200, "sessionID": "ses_1",
     "part": {"type": "tool", "callID": "c1", "tool": "edit",
              "state": {"status": "completed", "input": {"filePath": "README.md"}, "output": ""}}},
    {"type": "step_finish", "timestamp": 1760000000300, "sessionID": "ses_1",
     "part": {"type": "step-finish", "reason": "tool-calls", "cost": 0.012,
              "tokens": {"input": 1000, "output": 200, "reasoning": 0, "cache": {"read": 500, "write": 0}}}},
    {"type": "step_start", "timestamp": 1760000000400, "sessionID": "ses_1", "part": {"type": "step-start"}},
    {"type": "text", "timestamp": 1760000000500, "sessionID": "ses_1",
     "part": {"type": "text", "text": "Fixed the typo in README.md."}},
    {"type": "step_finish", "timestamp": 1760000000600, "sessionID": "ses_1",
     "part": {"type": "step-finish", "reason": "stop", "cost": 0.003,
              "tokens": {"input": 300, "output": 50, "reasoning": 0, "cache": {"read": 0, "write": 0}}}},
]) + "\n"

OPENCODE_ERROR = "\n".join(json.dumps(e) for e in [
    {"type": "error", "timestamp": 1760000000000, "sessionID": "ses_1",
     "error": {"name": "ProviderAuthError", "data": {"message": "Invalid API key for anthropic"}}},
]) + "\n"
