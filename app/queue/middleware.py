"""dramatiq middleware: bind the message's actor and id to every log line written while it runs."""

from __future__ import annotations

import structlog
from dramatiq.middleware import Middleware

from app.logs import get_logger


class LogContext(Middleware):
    """Binds `actor` and `message_id` to structlog's context for the worker thread running a message.

    Async actors run on dramatiq's event-loop thread, where these bindings do not reach; they bind
    their own logger (see Context.log), so this covers sync actors and dramatiq's own failure lines.
    """

    def before_process_message(self, broker, message):
        structlog.contextvars.bind_contextvars(actor=message.actor_name, message_id=message.message_id)

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if exception is not None:
            # Only the type: the text may quote a payload or a token; the actor stores a scrubbed copy.
            get_logger().warning("message_failed", error_type=type(exception).__name__)
        structlog.contextvars.unbind_contextvars("actor", "message_id")

    def after_skip_message(self, broker, message):
        structlog.contextvars.unbind_contextvars("actor", "message_id")
