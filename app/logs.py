"""Logging setup (structlog) and scrub(), which removes secrets from any text before it is written."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

import structlog

# Token shapes GitHub and model providers use; anything matching is replaced wherever it appears.
_TOKEN_PATTERNS = re.compile(
    r"(?:"
    r"gh[pousr]_[A-Za-z0-9]{16,}"  # GitHub classic, OAuth, user-to-server, server-to-server, refresh
    r"|github_pat_[A-Za-z0-9_]{20,}"  # fine-grained PATs
    r"|sk-[A-Za-z0-9_\-]{16,}"  # OpenAI / Anthropic (sk-ant-...) / OpenRouter (sk-or-...)
    r"|AIza[0-9A-Za-z_\-]{30,}"  # Google API keys
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
    r"|x-access-token:[^@\s]+"
    r"|(?i:bearer)\s+[A-Za-z0-9_\-\.=]{16,}"
    r")"
)
REDACTED = "[redacted]"


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every known secret value and every token-shaped string in `text`."""
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _TOKEN_PATTERNS.sub(REDACTED, text)


class _Scrubber:
    """structlog processor: scrub every string value of the event dict."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = [s for s in secrets if s]

    def __call__(self, _logger, _method, event_dict):
        for key, value in event_dict.items():
            if isinstance(value, str):
                event_dict[key] = scrub(value, self.secrets)
        return event_dict


def configure_logging(log_format: str = "console", level: str = "info", secrets: Iterable[str] = ()) -> None:
    renderer = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _Scrubber(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(**bound) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger("draftsmith").bind(**bound)
