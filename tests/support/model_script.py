"""A scripted model (pure): one request of any of four API shapes in, the scripted reply out, as bytes.

The HTTP server in model_server.py only moves bytes. A script is a list of steps ("write FILE with TEXT",
"run COMMAND", "finish with TEXT"); the reply to a request is the step numbered by the assistant turns
already in its conversation (so a retried request gets the same answer), expressed as the tool the
requesting CLI offers (shared/notes/agent-clis.md has the table).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# mini-swe-agent ends a run when a command's output starts with this line (its default config).
MINI_SUBMIT_COMMAND = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"
# Where the bubblewrap sandbox shows the workspace: the CLIs that want absolute paths get them under it.
DEFAULT_WORKSPACE = "/workspace"


@dataclass(frozen=True)
class Step:
    """One scripted turn: write a file, run a command, or finish with a message."""

    kind: str  # "write" | "run" | "finish"
    path: str = ""
    text: str = ""
    command: str = ""
    input_tokens: int = 100
    output_tokens: int = 20


def write(path: str, text: str, *, input_tokens: int = 100, output_tokens: int = 20) -> Step:
    """Create or overwrite `path` (relative to the workspace) with `text`."""
    return Step("write", path=path, text=text, input_tokens=input_tokens, output_tokens=output_tokens)


def run(command: str, *, input_tokens: int = 100, output_tokens: int = 20) -> Step:
    """Run a shell command in the workspace (for CLIs with a shell tool)."""
    return Step("run", command=command, input_tokens=input_tokens, output_tokens=output_tokens)


def finish(text: str = "Done.", *, input_tokens: int = 100, output_tokens: int = 20) -> Step:
    """End the run with `text` as the agent's final message."""
    return Step("finish", text=text, input_tokens=input_tokens, output_tokens=output_tokens)


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    chunks: list[bytes]


@dataclass(frozen=True)
class Logged:
    """One request as the server saw it, for tests to assert on what a CLI sent."""

    method: str
    path: str
    shape: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def text(self) -> str:
        """Everything the request said, as one string (prompt checks, secret checks)."""
        return json.dumps(self.body)


@dataclass
class ModelScript:
    """What the model says: steps, the API key it demands, and every request it was sent."""

    api_key: str
    steps: list[Step] = field(default_factory=list)
    workspace: str = DEFAULT_WORKSPACE
    requests: list[Logged] = field(default_factory=list)

    @property
    def usage_totals(self) -> tuple[int, int]:
        """(input, output) tokens reported over all answered requests."""
        return (sum(r.input_tokens for r in self.requests), sum(r.output_tokens for r in self.requests))

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        path, _, query = target.partition("?")
        headers = {k.lower(): v for k, v in headers.items()}
        if method == "HEAD" or (method == "GET" and path.rstrip("/") in ("", "/")):
            return Reply(200, "text/plain", [])  # Claude Code checks the base URL answers
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return self._log(method, path, "?", headers, {}, _error(400, "body is not JSON"))
        shape = _shape(method, path)
        if shape is None:
            return self._log(method, path, "?", headers, data, _error(404, f"no route {method} {path}"))
        if self.api_key not in (_presented_key(shape, headers, query) or "\0"):
            return self._log(method, path, shape, headers, data, _error(401, "invalid API key"))
        if shape == "models":
            return self._log(method, path, shape, headers, data,
                             _json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}))
        stream = _wants_stream(shape, path, query, data)
        if shape == "gemini" and _json_schema(data) is not None:  # Gemini CLI's model router and checks
            answer, side = Answer(text=json.dumps(_sample(_json_schema(data)))), True
        else:
            answer, side = self._turn(shape, data)
        usage = (0, 0) if side else (answer.step.input_tokens, answer.step.output_tokens)
        reply = _RENDER[shape](answer, data, usage, stream, len(self.requests) + 1)
        return self._log(method, path, shape, headers, data, reply, usage)

    def _turn(self, shape: str, data: dict[str, Any]) -> tuple[Answer, bool]:
        tools = _tool_names(shape, data)
        if not tools and _is_title_call(shape, data):
            return Answer(text="Scripted task"), True
        steps = self.steps or [finish("(no script)")]
        if not tools:
            return _as_one_text(steps), False
        step = steps[min(_assistant_turns(shape, data), len(steps) - 1)]
        return _express(step, tools, self.workspace), False

    def _log(self, method, path, shape, headers, data, reply: Reply, usage=(0, 0)) -> Reply:
        self.requests.append(Logged(method, path, shape, headers, data, reply.status, *usage))
        return reply


@dataclass(frozen=True)
class Answer:
    """A step as one CLI will understand it: a tool call (name, arguments) or a text message."""

    text: str = ""
    tool: str | None = None
    arguments: dict[str, Any] | None = None
    step: Step = field(default_factory=lambda: finish(""))


# The file-writing tool each CLI offers, with how its arguments are spelled (absolute paths for those
# whose own docs require them), and the shell tools. Names are matched against the request's tool list.
def _write_args(tool: str, path: str, text: str) -> dict[str, Any]:
    return {"Write": {"file_path": path, "content": text},
            "write_file": {"file_path": path, "content": text},
            "write": {"filePath": path, "content": text}}[tool]


_SHELL_TOOLS = {"exec_command": "cmd", "shell": "command", "bash": "command", "Bash": "command",
                "run_shell_command": "command"}


def _express(step: Step, tools: list[str], workspace: str) -> Answer:
    absolute = f"{workspace.rstrip('/')}/{step.path}"
    if step.kind == "write":
        for tool in ("Write", "write_file", "write"):
            if tool in tools:
                return Answer(tool=tool, arguments=_write_args(tool, absolute, step.text), step=step)
        command = f"printf %s {shlex.quote(step.text)} > {shlex.quote(step.path)}"
        shell = _shell(tools, command, step)
        # No tools at all: aider's "whole" edit format, the file name on a line and then the whole file.
        body = step.text if step.text.endswith("\n") else step.text + "\n"
        return shell or Answer(text=f"{step.path}\n```\n{body}```\n", step=step)
    if step.kind == "run":
        return _shell(tools, step.command, step) or Answer(text=f"```sh\n{step.command}\n```", step=step)
    if "bash" in tools and len(tools) == 1:  # mini-swe-agent finishes only by running its submit command
        command = MINI_SUBMIT_COMMAND if not step.text else f"{MINI_SUBMIT_COMMAND} && printf %s {shlex.quote(step.text)}"
        return Answer(tool="bash", arguments={"command": command}, step=step)
    return Answer(text=step.text, step=step)


def _as_one_text(steps: list[Step]) -> Answer:
    """The whole script as one reply, for a CLI without tools (aider): it applies every edit in the text
    and ends its run, so there is no second turn to finish in. Its usage is the script's total."""
    said = [s.text for s in steps if s.kind == "finish" and s.text]
    blocks = [_express(s, [], "").text for s in steps if s.kind != "finish"]
    total = Step("finish", input_tokens=sum(s.input_tokens for s in steps),
                 output_tokens=sum(s.output_tokens for s in steps))
    return Answer(text="\n\n".join([*said, *blocks]), step=total)


def _shell(tools: list[str], command: str, step: Step) -> Answer | None:
    for tool, argument in _SHELL_TOOLS.items():
        if tool in tools:
            value: Any = ["bash", "-lc", command] if tool == "shell" else command
            return Answer(tool=tool, arguments={argument: value}, step=step)
    return None


def _shape(method: str, path: str) -> str | None:
    if method == "GET" and path.rstrip("/").endswith("/models"):
        return "models"
    if method != "POST":
        return None
    if path.endswith("/messages"):
        return "anthropic"
    if path.endswith("/responses"):
        return "responses"
    if path.endswith("/chat/completions"):
        return "chat"
    if ":generateContent" in path or ":streamGenerateContent" in path:
        return "gemini"
    return None


def _presented_key(shape: str, headers: dict[str, str], query: str) -> str | None:
    if shape == "anthropic" and headers.get("x-api-key"):
        return headers["x-api-key"]
    if shape == "gemini":
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        return headers.get("x-goog-api-key") or params.get("key")
    auth = headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else None


def _wants_stream(shape: str, path: str, query: str, data: dict[str, Any]) -> bool:
    if shape == "gemini":
        return ":streamGenerateContent" in path
    return bool(data.get("stream"))


def _json_schema(data: dict[str, Any]) -> dict[str, Any] | None:
    config = data.get("generationConfig") or {}
    return config.get("responseJsonSchema") or config.get("responseSchema")


def _sample(schema: dict[str, Any]) -> Any:
    """A value matching a JSON schema (the subset model routers use)."""
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return _sample(schema[key][0])
    kind = schema.get("type")
    kind = (kind[0] if isinstance(kind, list) else kind or "object").lower()
    if kind == "object":
        return {name: _sample(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_sample(schema.get("items") or {"type": "string"})]
    return {"string": "scripted", "integer": 1, "number": 1, "boolean": False, "null": None}.get(kind, "scripted")


def _tool_names(shape: str, data: dict[str, Any]) -> list[str]:
    names = []
    for tool in data.get("tools") or []:
        if shape == "gemini":
            names += [d.get("name") for d in tool.get("functionDeclarations") or []]
        elif shape == "chat":
            names.append((tool.get("function") or {}).get("name"))
        else:  # Anthropic and Responses put the name at the top
            names.append(tool.get("name"))
    return [n for n in names if n]


def _is_title_call(shape: str, data: dict[str, Any]) -> bool:
    """OpenCode names the session with a tool-less call beside the first turn."""
    return shape == "chat" and "title" in json.dumps((data.get("messages") or [{}])[0]).lower()[:400]


def _assistant_turns(shape: str, data: dict[str, Any]) -> int:
    if shape == "gemini":
        return sum(1 for c in data.get("contents") or [] if c.get("role") == "model")
    if shape == "responses":
        items = data.get("input") if isinstance(data.get("input"), list) else []
        return sum(1 for i in items if i.get("type") == "function_call"
                   or (i.get("type", "message") == "message" and i.get("role") == "assistant"))
    return sum(1 for m in data.get("messages") or [] if m.get("role") == "assistant")


def _json(status: int, payload: dict[str, Any]) -> Reply:
    return Reply(status, "application/json", [json.dumps(payload).encode()])


def _error(status: int, message: str) -> Reply:
    return _json(status, {"error": {"type": "scripted_error", "message": message, "code": status}})


def _sse(events: Iterator[tuple[str | None, Any]]) -> Reply:
    chunks = []
    for name, payload in events:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        chunks.append(((f"event: {name}\n" if name else "") + f"data: {data}\n\n").encode())
    return Reply(200, "text/event-stream", chunks)


def _anthropic(answer: Answer, data: dict[str, Any], usage: tuple[int, int], stream: bool, n: int) -> Reply:
    block: dict[str, Any] = ({"type": "tool_use", "id": f"toolu_{n}", "name": answer.tool, "input": answer.arguments}
                             if answer.tool else {"type": "text", "text": answer.text})
    stop = "tool_use" if answer.tool else "end_turn"
    message = {"id": f"msg_{n}", "type": "message", "role": "assistant", "model": data.get("model", "fake-model"),
               "content": [block], "stop_reason": stop, "stop_sequence": None,
               "usage": {"input_tokens": usage[0], "output_tokens": usage[1]}}
    if not stream:
        return _json(200, message)

    def events():
        start = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": usage[0], "output_tokens": 0}}
        yield "message_start", {"type": "message_start", "message": start}
        if answer.tool:
            yield "content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {**block, "input": {}}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(answer.arguments)}
        else:
            yield "content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}}
            delta = {"type": "text_delta", "text": answer.text}
        yield "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": 0}
        yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                "usage": {"input_tokens": usage[0], "output_tokens": usage[1]}}
        yield "message_stop", {"type": "message_stop"}

    return _sse(events())


def _responses(answer: Answer, data: dict[str, Any], usage: tuple[int, int], stream: bool, n: int) -> Reply:
    if answer.tool:
        item = {"type": "function_call", "id": f"fc_{n}", "call_id": f"call_{n}", "name": answer.tool,
                "arguments": json.dumps(answer.arguments), "status": "completed"}
    else:
        item = {"type": "message", "id": f"msg_{n}", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": answer.text, "annotations": []}]}
    response = {"id": f"resp_{n}", "object": "response", "model": data.get("model", "fake-model"),
                "status": "completed", "output": [item],
                "usage": {"input_tokens": usage[0], "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens": usage[1], "output_tokens_details": {"reasoning_tokens": 0},
                          "total_tokens": sum(usage)}}
    if not stream:
        return _json(200, response)
    return _sse(iter([
        ("response.created", {"type": "response.created",
                              "response": {**response, "status": "in_progress", "output": []}}),
        ("response.output_item.added", {"type": "response.output_item.added", "output_index": 0, "item": item}),
        ("response.output_item.done", {"type": "response.output_item.done", "output_index": 0, "item": item}),
        ("response.completed", {"type": "response.completed", "response": response}),
    ]))


def _chat(answer: Answer, data: dict[str, Any], usage: tuple[int, int], stream: bool, n: int) -> Reply:
    call = ({"id": f"call_{n}", "type": "function",
             "function": {"name": answer.tool, "arguments": json.dumps(answer.arguments)}} if answer.tool else None)
    finish_reason = "tool_calls" if call else "stop"
    usage_block = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    base = {"id": f"chatcmpl-{n}", "created": 1_700_000_000, "model": data.get("model", "fake-model")}
    if not stream:
        message: dict[str, Any] = {"role": "assistant", "content": answer.text or None}
        if call:
            message["tool_calls"] = [call]
        return _json(200, {**base, "object": "chat.completion", "usage": usage_block,
                           "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}]})

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def events():
        yield None, chunk({"role": "assistant", "content": ""})
        if call:
            yield None, chunk({"tool_calls": [{"index": 0, **call}]})
        else:
            yield None, chunk({"content": answer.text})
        yield None, chunk({}, finish_reason)
        if (data.get("stream_options") or {}).get("include_usage"):
            yield None, {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage_block}
        yield None, "[DONE]"

    return _sse(events())


def _gemini(answer: Answer, data: dict[str, Any], usage: tuple[int, int], stream: bool, n: int) -> Reply:
    part = {"functionCall": {"name": answer.tool, "args": answer.arguments}} if answer.tool else {"text": answer.text}
    payload = {"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
               "usageMetadata": {"promptTokenCount": usage[0], "candidatesTokenCount": usage[1],
                                 "totalTokenCount": sum(usage)},
               "modelVersion": "fake-model", "responseId": f"resp_{n}"}
    return _sse(iter([(None, payload)])) if stream else _json(200, payload)


_RENDER = {"anthropic": _anthropic, "responses": _responses, "chat": _chat, "gemini": _gemini}
