"""Route an event to the handlers registered for its name and action (shaped like gidgethub's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[Any], Awaitable[None]]


class Router:
    """Handlers register on an event name and, optionally, one top-level payload key's value."""

    def __init__(self, *others: Router) -> None:
        self._shallow: dict[str, list[Handler]] = {}
        self._deep: dict[str, dict[str, dict[Any, list[Handler]]]] = {}
        for other in others:
            self.add_router(other)

    def add_router(self, other: Router) -> None:
        for event, handlers in other._shallow.items():
            self._shallow.setdefault(event, []).extend(handlers)
        for event, keys in other._deep.items():
            for key, values in keys.items():
                for value, handlers in values.items():
                    self._deep.setdefault(event, {}).setdefault(key, {}).setdefault(value, []).extend(handlers)

    def add(self, handler: Handler, event: str, **data_detail: Any) -> None:
        if len(data_detail) > 1:
            raise TypeError("match on at most one payload key")
        if not data_detail:
            self._shallow.setdefault(event, []).append(handler)
            return
        (key, value), = data_detail.items()
        self._deep.setdefault(event, {}).setdefault(key, {}).setdefault(value, []).append(handler)

    def register(self, event: str, **data_detail: Any) -> Callable[[Handler], Handler]:
        def decorator(handler: Handler) -> Handler:
            self.add(handler, event, **data_detail)
            return handler

        return decorator

    def fetch(self, event_name: str, payload: dict[str, Any]) -> list[Handler]:
        """The handlers for an event, in registration order; no I/O, so ingress can ask cheaply."""
        found = list(self._shallow.get(event_name, ()))
        for key, values in self._deep.get(event_name, {}).items():
            if key in payload:
                try:
                    found.extend(values.get(payload[key], ()))
                except TypeError:  # an unhashable value matches nothing
                    pass
        return found

    async def dispatch(self, event_name: str, payload: dict[str, Any], context: Any) -> int:
        """Call every matching handler with `context`; returns how many ran."""
        handlers = self.fetch(event_name, payload)
        for handler in handlers:
            await handler(context)
        return len(handlers)
