"""Checks requests (and optionally responses) against GitHub's OpenAPI description (@octokit/openapi)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from openapi_core import Config, OpenAPI
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.testing import MockRequest, MockResponse

from app.fakehub.npm import openapi_spec_path

SERVER = "https://api.github.com"
DOCS = "https://docs.github.com/rest"

_cache: dict[Path, tuple[dict[str, Any], OpenAPI]] = {}
_cache_lock = threading.Lock()


def load(path: Path | None = None) -> tuple[dict[str, Any], OpenAPI]:
    """Parse the 13 MB description once per process (json.load takes ~0.15 s; a pickle is no faster)."""
    path = Path(path or openapi_spec_path())
    with _cache_lock:
        if path not in _cache:
            document = json.loads(path.read_bytes())
            # Checking the description itself takes 14 s; it is GitHub's own, so skip that.
            _cache[path] = (document, OpenAPI.from_dict(document, config=Config(spec_validator_cls=None)))
        return _cache[path]


@dataclass
class Violation:
    """A request GitHub would refuse: `status` and the error body it would answer with."""

    status: int
    body: dict[str, Any]


class ContractChecker:
    """Validates one request or response against a route template of the description."""

    def __init__(self, path: Path | None = None) -> None:
        self.document, self.openapi = load(path)
        self._per_template: dict[str, OpenAPI] = {}

    def _for(self, template: str) -> OpenAPI:
        # A description holding just this path (components shared, not copied) spares openapi-core a
        # search through 800 path templates on every call.
        if template not in self._per_template:
            document = {**self.document, "paths": {template: self.document["paths"][template]}}
            self._per_template[template] = OpenAPI.from_dict(document, config=Config(spec_validator_cls=None))
        return self._per_template[template]

    def documentation_url(self, template: str, method: str) -> str:
        operation = self.document["paths"].get(template, {}).get(method.lower(), {})
        return operation.get("externalDocs", {}).get("url", DOCS)

    def knows(self, path: str, method: str) -> str | None:
        """'ok', 'method' (path known, method not) or None for an unknown path."""
        result = self.openapi.unmarshal_request(MockRequest(SERVER, method.lower(), _escape_free(path)))
        for error in result.errors:
            if isinstance(error, PathNotFound):
                return None
            if isinstance(error, OperationNotFound):
                return "method"
        return "ok"

    def check_request(
        self, template: str, params: dict[str, str], method: str, query: dict[str, str], body: bytes | None
    ) -> Violation | None:
        url = _fill(template, params)
        request = MockRequest(
            SERVER, method.lower(), url, args=query, data=body or None,
            content_type="application/json" if body else None,
        )
        result = self._for(template).unmarshal_request(request)
        if not result.errors:
            return None
        docs = self.documentation_url(template, method)
        error = result.errors[0]
        if isinstance(error, (PathNotFound, OperationNotFound)):
            return Violation(404, {"message": "Not Found", "documentation_url": docs, "status": "404"})
        details = _describe(error)
        return Violation(
            422,
            {
                "message": "Invalid request.\n\n" + "\n".join(details),
                "documentation_url": docs,
                "errors": details,
                "status": "422",
            },
        )

    def check_response(
        self, template: str, params: dict[str, str], method: str, status: int, body: Any
    ) -> list[str]:
        """Problems with a response the fake is about to send; empty when it matches the description."""
        request = MockRequest(SERVER, method.lower(), _fill(template, params))
        data = json.dumps(body).encode() if body is not None else b""
        response = MockResponse(data, status_code=status, content_type="application/json" if body is not None else None)
        result = self._for(template).unmarshal_response(request, response)
        problems = []
        for error in result.errors:
            inner = _schema_errors(error)
            if inner is None:
                problems.append(str(error)[:500])
                continue
            # openapi-core refuses null for `nullable` schemas that also use enum/anyOf (GitHub's description
            # has many); real answers carry null there, so those are not problems.
            problems += [_where(e) for e in inner if not (e.instance is None and _nullable(e.schema))]
        return problems


def _fill(template: str, params: dict[str, str]) -> str:
    # Path parameters such as {path} and {ref} may hold slashes; the description's templates cannot match
    # them unescaped, so escape each value.
    url = template
    for name, value in params.items():
        url = url.replace("{" + name + "}", quote(str(value), safe=""))
    return url


def _escape_free(path: str) -> str:
    return path


def _schema_errors(error: BaseException):
    for candidate in (error, error.__cause__):
        found = getattr(candidate, "schema_errors", None)
        if found:
            return list(found)
    return None


def _nullable(schema: Any) -> bool:
    return isinstance(schema, dict) and bool(schema.get("nullable"))


def _where(error) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "body"
    return f"For '{where}': {error.message[:300]}"


def _describe(error: BaseException) -> list[str]:
    inner = _schema_errors(error)
    if inner is None:
        cause = error.__cause__
        return [f"{type(error).__name__}: {cause or error}"[:500]]
    return [_where(e) for e in inner]
