"""Test fixture `model_server`: the scripted model (model_script.py) over HTTP on 127.0.0.1."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.model_script import ModelScript, Step

# Not token-shaped (no sk- prefix), so only scrubbing of the stored value itself can hide it.
API_KEY = "scripted-model-key-7c1e5b9d2f4a6e8c0b3d"


class ModelServer:
    """`.script([...])` sets what the model does; `.url` is its root, `.requests` what it was sent."""

    def __init__(self, api_key: str = API_KEY) -> None:
        self.model = ModelScript(api_key=api_key)
        self.api_key = api_key
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (ends in /v1)."""
        return f"{self.url}/v1"

    def script(self, steps: list[Step]) -> None:
        with self._lock:
            self.model.steps = list(steps)
            self.model.requests.clear()

    @property
    def requests(self):
        with self._lock:
            return list(self.model.requests)

    @property
    def usage_totals(self) -> tuple[int, int]:
        with self._lock:
            return self.model.usage_totals

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes):
        with self._lock:
            return self.model.answer(method, target, headers, body)

    def start(self) -> ModelServer:
        threading.Thread(target=self._server.serve_forever, name="model-server", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            reply = server.answer(self.command, self.path, dict(self.headers.items()), body)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            if reply.content_type == "text/event-stream":
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                for chunk in reply.chunks:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                self.close_connection = True
                return
            data = b"".join(reply.chunks)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_HEAD = _serve  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def model_server():
    """A scripted model speaking Anthropic, OpenAI (Responses, Chat) and Gemini, wanting API_KEY."""
    server = ModelServer().start()
    yield server
    server.stop()
