"""How a run's two containers talk: files in the `handoff` directory of the workspace volume they share.

The runner writes `request.json` (the agent, the prompt, a fresh key); the agent's container takes it (reads,
then deletes it) before it starts the agent, so the key is never where the agent could read it. Everything
else is signed with that key: the agent's container answers `agent.json` and `tests-result.json`, the runner
asks with `tests.json`, and a forged or edited file fails its signature and is ignored. The agent's output
goes to `log.jsonl`, which the runner relays into its own log (the run's log). `stop` tells the agent's
container to exit, whatever it waits for. Every file is written to a temporary name and renamed, so a reader
never sees half of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REQUEST = "request.json"
AGENT_DONE = "agent.json"
TESTS = "tests.json"
TESTS_DONE = "tests-result.json"
LOG = "log.jsonl"
STOP = "stop"
_MAX_LINE = 20_000  # characters of one relayed log line
_POLL_SECONDS = 0.1


def new_key() -> bytes:
    return secrets.token_bytes(32)


def _mac(key: bytes, data: dict[str, Any]) -> str:
    return hmac.new(key, json.dumps(data, sort_keys=True).encode(), hashlib.sha256).hexdigest()


class Handoff:
    """The hand-off directory, seen from either container."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / LOG).touch()

    # writing
    def write(self, name: str, data: dict[str, Any], key: bytes | None = None) -> None:
        body = {"data": data, "mac": _mac(key, data)} if key is not None else {"data": data}
        scratch = self.root / f".{name}.{secrets.token_hex(4)}"
        scratch.write_text(json.dumps(body))
        os.replace(scratch, self.root / name)

    def send_request(self, request: dict[str, Any], key: bytes) -> None:
        self.write(REQUEST, {**request, "key": key.hex()})

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            (self.root / STOP).touch()

    def stopped(self) -> bool:
        return (self.root / STOP).exists()

    def discard(self, *names: str) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (self.root / name).unlink()

    # reading
    def read(self, name: str, key: bytes | None) -> dict[str, Any] | None:
        """The file's data; None while it is missing, unreadable or not signed with `key`."""
        try:
            body = json.loads((self.root / name).read_text())
            data = body["data"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(data, dict):
            return None
        if key is not None and not hmac.compare_digest(str(body.get("mac", "")), _mac(key, data)):
            return None
        return data

    def take_request(self) -> tuple[dict[str, Any], bytes] | None:
        """The runner's request and its key, the file deleted: nothing started later can read the key."""
        data = self.read(REQUEST, None)
        if data is None:
            return None
        self.discard(REQUEST)
        try:
            return data, bytes.fromhex(data.pop("key"))
        except (KeyError, ValueError, TypeError):
            return None

    async def wait(self, read: Callable[[], Any], seconds: float | None, on_poll: Callable[[], None] | None = None,
                   ) -> Any:
        """Poll `read()` until it returns something (or `stop` appears); None after `seconds`."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            if on_poll:
                on_poll()
            found = read()
            if found is not None:
                return found
            if self.stopped() or (deadline is not None and time.monotonic() > deadline):
                return None
            await asyncio.sleep(_POLL_SECONDS)


class LogWriter:
    """The agent container's side of the log: each line printed (its own container log) and appended to the
    hand-off log for the runner. Has the `add(event)` of the runner's LogBatcher, which `run_agent` calls."""

    def __init__(self, handoff: Handoff) -> None:
        self.file = open(handoff.root / LOG, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())

    def add(self, event: dict[str, Any]) -> None:
        if event.get("type") != "log":
            return
        print(event["text"], flush=True)
        self.file.write(json.dumps({"stream": event.get("stream"), "text": event["text"]}) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class LogRelay:
    """The runner's side: hands each whole new line of the hand-off log to `emit(stream, text)`.

    The agent can write that file directly, so a line is only ever taken as the agent's output: its stream
    is stdout or stderr, never the runner's own `system`.
    """

    def __init__(self, handoff: Handoff, emit: Callable[[str, str], None]) -> None:
        self.path = handoff.root / LOG
        self.emit = emit
        self.offset = 0
        self.pending = b""

    def drain(self) -> None:
        """Relay every whole line written so far."""
        while True:
            try:
                with open(self.path, "rb") as log:
                    log.seek(self.offset)
                    chunk = log.read(1 << 20)
            except OSError:
                return
            if not chunk:
                return
            self.offset += len(chunk)
            *lines, self.pending = (self.pending + chunk).split(b"\n")
            self._emit(lines)

    def _emit(self, lines: list[bytes]) -> None:
        for line in lines:
            try:
                entry = json.loads(line)
                stream, text = entry.get("stream"), str(entry.get("text", ""))
            except (ValueError, AttributeError):
                stream, text = "stdout", line.decode(errors="replace")
            self.emit(stream if stream in ("stdout", "stderr") else "stdout", text[:_MAX_LINE])
