"""Fixtures for the fake GitHub's own tests: a webhook receiver and App JWTs."""

from __future__ import annotations

import os
import time
from typing import Iterator

import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.fakehub.background import BackgroundServer


class WebhookSink:
    """Records every webhook request it receives and answers `status`."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 202
        self.url = ""

    async def receive(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.body()))
        return Response(status_code=self.status)


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    sink = WebhookSink()
    with BackgroundServer(Starlette(routes=[Route("/hook", sink.receive, methods=["POST"])])) as server:
        sink.url = f"{server.url}/hook"
        yield sink


def app_jwt(fakehub, iat_offset: int = -60, exp_offset: int = 540) -> str:
    """An App JWT like githubkit makes; offsets are seconds from now."""
    now = int(time.time())
    claims = {"iat": now + iat_offset, "exp": now + exp_offset, "iss": str(fakehub.app_id)}
    return jwt.encode(claims, fakehub.private_key_pem, algorithm="RS256")


@pytest.fixture(autouse=True)
def _check_the_fakes_answers_too(request):
    """The fake's own tests also check every answer it gives against GitHub's description."""
    if "fakehub" in request.fixturenames and not os.environ.get("FAKEHUB_SKIP_RESPONSE_CHECK"):
        request.getfixturevalue("fakehub").hub.validate_responses = True
