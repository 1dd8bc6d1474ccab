"""Serves each fake repository over git's smart HTTP, authenticating `x-access-token:<token>` as GitHub does."""

from __future__ import annotations

import base64
import io
import re
import sys
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from app.fakehub import git
from app.fakehub.auth import git_access
from app.fakehub.hub import FakeHub
from app.fakehub.state import RequestRecord, now

GIT_PATH = re.compile(r"^/(?P<owner>[^/]+)/(?P<name>[^/]+?)\.git(?P<rest>/.*)?$")


def _basic_password(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


class GitEndpoint:
    """An ASGI endpoint in front of dulwich's WSGI git server (buffered: git's requests and answers are small here)."""

    def __init__(self, hub: FakeHub) -> None:
        self.hub = hub
        self.wsgi = git.smart_http_app(hub.git_dir_for)

    async def __call__(self, request: Request) -> Response:
        found = GIT_PATH.match(request.url.path)
        assert found is not None
        full_name = f"{found['owner']}/{found['name']}"
        credentials = _basic_password(request.headers.get("authorization"))
        if credentials is None:
            # git only sends credentials after a 401 challenge.
            return Response("Authentication required\n", 401, {"WWW-Authenticate": 'Basic realm="GitHub"'})
        _user, token = credentials
        # A push is receive-pack (its ref advertisement is asked for with ?service=git-receive-pack).
        write = "git-receive-pack" in (request.url.path + "?" + request.url.query)
        access = git_access(self.hub.state, token, full_name, write)
        self._record(request, token, access)
        if access == 404:
            return Response("Repository not found.\n", 404)
        if access == 403:
            return Response(f"Permission to {full_name}.git denied to {self.hub.app.bot.login}.\n", 403)
        if access != 200:
            return Response("Invalid username or token.\n", 401, {"WWW-Authenticate": 'Basic realm="GitHub"'})
        body = await request.body()
        status, headers, chunks = await run_in_threadpool(self._call_wsgi, request, body)
        if request.url.path.endswith("/git-receive-pack"):
            repo = self.hub.state.repos[full_name]
            names = git.pushed_refs(body)
            with self.hub.state.lock:
                repo.pushed_at = now()
                if names is None:
                    repo.heads = None
                else:
                    git.refs_moved(repo, git.open_repo(repo.git_dir), names)
        return Response(b"".join(chunks), status, dict(headers))

    def _record(self, request: Request, token: str, status: int) -> None:
        with self.hub.state.lock:
            self.hub.state.requests.append(RequestRecord(
                method=request.method, path=request.url.path, query=request.url.query, actor="git",
                status=status, body=None, token=token,
            ))

    def _call_wsgi(self, request: Request, body: bytes) -> tuple[int, list[tuple[str, str]], list[bytes]]:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method, "SCRIPT_NAME": "", "PATH_INFO": request.url.path,
            "QUERY_STRING": request.url.query, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "0",
            "SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
        }
        for name, value in request.headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif key not in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                environ[f"HTTP_{key}"] = value
        answer: dict[str, Any] = {}
        written: list[bytes] = []  # dulwich streams through start_response's write() as well as its iterable

        def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):
            answer["status"] = int(status.split(" ", 1)[0])
            answer["headers"] = [(k, v) for k, v in headers if k.lower() not in ("content-length", "transfer-encoding")]
            return written.append

        for chunk in self.wsgi(environ, start_response):
            written.append(chunk)
        return answer["status"], answer["headers"], written
