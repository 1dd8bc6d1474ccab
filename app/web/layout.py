"""The frame every Draftsmith page shares: one stylesheet (Simple.css and a few rules of ours), phone-sized."""

from __future__ import annotations

import hashlib
import html
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

STYLESHEET = Path(__file__).parent / "static" / "draftsmith.css"


@cache
def _stylesheet() -> tuple[bytes, str]:
    content = STYLESHEET.read_bytes()
    return content, hashlib.sha256(content).hexdigest()[:12]


def stylesheet_url() -> str:
    # The digest in the URL lets browsers keep the file for good and still see a new version at once.
    return f"/static/draftsmith.css?v={_stylesheet()[1]}"


def page(title: str, body: str, *, status_code: int = 200, nav: str = "") -> HTMLResponse:
    """A whole page around `body` (HTML the caller escaped); `title` is plain text; `nav` is more of the
    header's navigation (HTML), after the brand."""
    return HTMLResponse(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)} · Draftsmith</title>"
        f"<link rel=\"stylesheet\" href=\"{stylesheet_url()}\"></head><body>"
        f"<header><nav><a class=\"brand\" href=\"/\">Draftsmith</a>{nav}</nav></header>"
        f"<main>{body}</main>"
        "<footer><p>Draftsmith turns GitHub issues into draft pull requests written by coding agents.</p></footer>"
        "</body></html>",
        status_code=status_code,
    )


async def _serve_stylesheet(request: Request) -> Response:
    content, _ = _stylesheet()
    return Response(content, media_type="text/css", headers={"Cache-Control": "public, max-age=31536000, immutable"})


routes = [Route("/static/draftsmith.css", _serve_stylesheet, methods=["GET"])]
