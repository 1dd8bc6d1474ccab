"""Test fixture `fake_llm`: a scripted OpenAI-compatible chat-completions server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

# mini-swe-agent ends a run when a command's output starts with this line (its default config).
MINI_SUBMIT_COMMAND = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"


@dataclass
class Step:
    """One scripted model reply: plain `content`, and optionally one `bash` tool call."""

    content: str = ""
    bash: str | None = None
    prompt_tokens: int = 100
    completion_tokens: int = 20


def text(content: str, **usage: int) -> Step:
    """A plain text reply (aider, claude-style agents that talk in prose)."""
    return Step(content=content, **usage)


def bash(command: str, thought: str = "", **usage: int) -> Step:
    """A reply calling mini-swe-agent's `bash` tool with `command`."""
    return Step(content=thought, bash=command, **usage)


def submit(final_output: str = "", **usage: int) -> Step:
    """mini-swe-agent's way to finish: the submit marker, optionally followed by the final output."""
    command = MINI_SUBMIT_COMMAND if not final_output else f"{MINI_SUBMIT_COMMAND} && printf %s {json.dumps(final_output)}"
    return bash(command, **usage)


@dataclass
class FakeLLM:
    base_url: str = ""
    steps: list[Step] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, steps: list[Step]) -> None:
        """Replace the script; the reply to a request is the step numbered by its assistant turns so far."""
        with self.lock:
            self.steps = list(steps)
            self.requests.clear()

    @property
    def usage_totals(self) -> tuple[int, int]:
        """(prompt, completion) tokens reported over all answered requests."""
        with self.lock:
            answered = [self._step_for(body) for body in self.requests]
        return sum(s.prompt_tokens for s in answered), sum(s.completion_tokens for s in answered)

    def _step_for(self, body: dict[str, Any]) -> Step:
        # Counting the assistant turns already in the conversation (not requests received) keeps the
        # script stable when a client retries a request.
        turns = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        if not self.steps:
            return Step(content="(no script)")
        return self.steps[min(turns, len(self.steps) - 1)]

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.requests.append(body)
            index = len(self.requests)
            step = self._step_for(body)
        message: dict[str, Any] = {"role": "assistant", "content": step.content}
        finish = "stop"
        if step.bash is not None:
            message["tool_calls"] = [{
                "id": f"call_{index}",
                "type": "function",
                "function": {"name": "bash", "arguments": json.dumps({"command": step.bash})},
            }]
            finish = "tool_calls"
        return {
            "id": f"chatcmpl-fake-{index}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake-model"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": step.prompt_tokens,
                "completion_tokens": step.completion_tokens,
                "total_tokens": step.prompt_tokens + step.completion_tokens,
            },
        }


def _handler(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._send(400, {"error": {"message": "body is not JSON"}})
                return
            self._send(200, fake.reply(body))

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def fake_llm():
    """A scripted OpenAI-compatible server: `.script([...])`, `.base_url` (ends in /v1), `.requests`."""
    fake = FakeLLM()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, name="fake-llm", daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def mini_swe_agent_bin():
    """bin/ of an isolated venv with the real mini-swe-agent (installed once into .cache/agents)."""
    from tests.support.agent_clis import mini_swe_agent_bin as install

    return install()
