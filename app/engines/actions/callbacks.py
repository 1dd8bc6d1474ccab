"""POST /api/runs/{run_id}/events: progress, log batches and the final result reported by Actions runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.db import session_scope
from app.engines.actions.oidc import OIDCError, OIDCVerifier, issuer_for
from app.logs import get_logger, scrub
from app.models import LogLine, Run, Task
from app.engines.actions import callback_tokens

PATH = "/api/runs/{run_id:int}/events"
MAX_EVENTS_PER_REQUEST = 2000
MAX_LOG_TEXT = 16_000

log = get_logger(component="callbacks")


class ProgressEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["progress"]
    stage: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")
    detail: str | None = Field(default=None, max_length=2000)


class LogEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["log"]
    stream: Literal["stdout", "stderr", "system"] = "stdout"
    text: str


class HeartbeatEvent(BaseModel):
    """Sent by a runner that has nothing else to say for a while: it is still working."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["heartbeat"]


class RunUsage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input_tokens: int | None = Field(default=None, ge=0)
    output_tokens: int | None = Field(default=None, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)
    agent_seconds: float | None = Field(default=None, ge=0)


class RunResult(BaseModel):
    """The final result of an Actions run: a patch (`git diff --binary` against the base) or a pushed branch."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["result"]
    success: bool
    summary: str = Field(default="", max_length=65_000)
    patch: str | None = None
    branch: str | None = Field(default=None, max_length=255)
    usage: RunUsage = Field(default_factory=RunUsage)
    exit_code: int | None = None
    tests_passed: bool | None = None
    error: str | None = Field(default=None, max_length=65_000)


Event = Annotated[ProgressEvent | LogEvent | HeartbeatEvent | RunResult, Field(discriminator="type")]


class EventBatch(BaseModel):
    events: list[Event] = Field(max_length=MAX_EVENTS_PER_REQUEST)

    @model_validator(mode="after")
    def _result_comes_last(self) -> EventBatch:
        results = [i for i, event in enumerate(self.events) if isinstance(event, RunResult)]
        if len(results) > 1 or (results and results[0] != len(self.events) - 1):
            raise ValueError("a batch holds at most one result, as its last event")
        return self


class RunEventHandler(Protocol):
    """What the app does with a run's reports (the lead's reaction: commit, PR, check run)."""

    def alive(self, run_id: int) -> None: ...

    async def progress(self, run_id: int, stage: str) -> None: ...

    async def result(self, run_id: int, result: RunResult) -> None: ...


@dataclass
class RunCallbacks:
    """Everything the endpoint needs; put one on `app.state.run_callbacks` or pass it to make_routes()."""

    engine: Engine
    handler: RunEventHandler
    oidc: OIDCVerifier | None = None
    secrets: Sequence[str] = field(default_factory=tuple)
    max_log_lines_per_run: int = 50_000
    max_body_bytes: int = 48 * 1024 * 1024


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason


def make_routes(callbacks: RunCallbacks | None = None) -> list[Route]:
    """The callback route bound to `callbacks`; when None it finds them at request time in
    `app.state.run_callbacks` or the Runtime's `run_callbacks` (set by whoever wires the app)."""

    async def post_run_events(request: Request) -> JSONResponse:
        cb = callbacks or _configured(request)
        if cb is None:
            return JSONResponse({"error": "this server does not accept Actions runs yet"}, status_code=503)
        return await _handle(cb, request)

    return [Route(PATH, post_run_events, methods=["POST"], name="run_events")]


routes: list[Route] = make_routes()


def _configured(request: Request) -> RunCallbacks | None:
    state = request.app.state
    found = getattr(state, "run_callbacks", None)
    runtime = getattr(state, "runtime", None)
    if found is None and runtime is not None:
        found = runtime.run_callbacks
        if found is None and runtime.github is not None:
            # Wired on first use, so a web process that only records webhooks never loads the runners.
            wire(runtime)
            found = runtime.run_callbacks
    return found


async def _handle(cb: RunCallbacks, request: Request) -> JSONResponse:
    run_id = request.path_params["run_id"]
    try:
        length = int(request.headers.get("content-length") or 0)
        if length > cb.max_body_bytes:
            raise _Refused(413, f"body over {cb.max_body_bytes} bytes")
        credential = await _authenticate(cb, request, run_id)
        body = await request.body()
        if len(body) > cb.max_body_bytes:
            raise _Refused(413, f"body over {cb.max_body_bytes} bytes")
        try:
            batch = EventBatch.model_validate_json(body)
        except ValidationError as exc:
            raise _Refused(422, exc.errors(include_url=False, include_input=False).__repr__()[:2000]) from None
        result = batch.events[-1] if batch.events and isinstance(batch.events[-1], RunResult) else None
        # Claim the result before anything is written, so a replayed result changes nothing at all.
        if result is not None and not await run_in_threadpool(_claim_result, cb.engine, run_id, credential):
            raise _Refused(401, "this run's result was already reported, or its credential expired")
        try:
            secrets = [*cb.secrets, *([credential] if credential else [])]
            stored = await run_in_threadpool(_store_logs, cb, run_id, batch.events, secrets)
            await run_in_threadpool(cb.handler.alive, run_id)
            for event in batch.events:
                if isinstance(event, ProgressEvent):
                    await cb.handler.progress(run_id, event.stage)
            if result is not None:
                await cb.handler.result(run_id, result)
        except Exception:
            if result is not None:
                # Let the runner retry the result rather than lose it.
                await run_in_threadpool(callback_tokens.release, cb.engine, run_id, credential)
            log.exception("run_events_failed", run_id=run_id)
            return JSONResponse({"error": "could not handle the events; retry"}, status_code=503)
    except _Refused as refused:
        log.warning("run_events_refused", run_id=run_id, status=refused.status, reason=refused.reason)
        return JSONResponse({"error": refused.reason}, status_code=refused.status)
    return JSONResponse({"accepted": len(batch.events), "logs_stored": stored, "result": result is not None})


async def _authenticate(cb: RunCallbacks, request: Request, run_id: int) -> str | None:
    """Return the callback token used (None for OIDC), or raise _Refused with 401/403."""
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise _Refused(401, "missing bearer credential")
    if credential.startswith(callback_tokens.PREFIX):
        if not await run_in_threadpool(callback_tokens.verify, cb.engine, run_id, credential, consume=False):
            raise _Refused(401, "callback credential is wrong, used or expired")
        return credential
    if cb.oidc is None:
        raise _Refused(401, "OIDC tokens are not accepted by this server")
    found = await run_in_threadpool(_run_origin, cb.engine, run_id)
    if found is None:
        raise _Refused(401, "unknown run")
    repository, actions_run_id = found
    try:
        claims = await cb.oidc.verify(credential, repository=repository)
    except OIDCError as exc:
        raise _Refused(exc.status, exc.reason) from None
    # A token proves which repository's workflow sent it; any workflow there can mint one. Only a
    # run our dispatch started may report, and once the workflow_run webhook has told us which
    # Actions run that is, only that one.
    if claims.get("event_name") != "repository_dispatch":
        raise _Refused(403, f"token is from a {claims.get('event_name') or 'unknown'} workflow run, not a Draftsmith dispatch")
    if actions_run_id is not None and str(claims.get("run_id")) != str(actions_run_id):
        raise _Refused(403, "token is from another Actions run than this run's")
    if not await run_in_threadpool(callback_tokens.run_is_open, cb.engine, run_id):
        raise _Refused(401, "this run no longer accepts callbacks")
    return None


def _run_origin(engine: Engine, run_id: int) -> tuple[str, int | None] | None:
    """The run's repository and, once linked, its Actions run id (None for an unknown run)."""
    with session_scope(engine) as session:
        row = session.exec(
            select(Task.repo_full_name, Run.actions_run_id).join(Run, Run.task_id == Task.id).where(Run.id == run_id)
        ).first()
        return None if row is None else tuple(row)


def _claim_result(engine: Engine, run_id: int, credential: str | None) -> bool:
    if credential is not None:
        return callback_tokens.verify(engine, run_id, credential, consume=True)
    return callback_tokens.consume_for_run(engine, run_id)


def _store_logs(cb: RunCallbacks, run_id: int, events: list[Any], secrets: list[str]) -> int:
    lines: list[tuple[str, str]] = []
    for event in events:
        if isinstance(event, LogEvent):
            text = event.text if len(event.text) <= MAX_LOG_TEXT else event.text[:MAX_LOG_TEXT] + " …[line cut]"
            lines.append((event.stream, text))
        elif isinstance(event, ProgressEvent):
            lines.append(("system", f"stage: {event.stage}" + (f" ({event.detail})" if event.detail else "")))
    if not lines:
        return 0
    for _attempt in range(5):
        try:
            return _append_lines(cb, run_id, lines, secrets)
        except IntegrityError:
            continue  # another batch of this run took the same sequence numbers; read the new maximum
    raise RuntimeError(f"could not append log lines to run {run_id}")


def _append_lines(cb: RunCallbacks, run_id: int, lines: list[tuple[str, str]], secrets: list[str]) -> int:
    with session_scope(cb.engine) as session:
        last, count = session.exec(
            select(func.max(LogLine.seq), func.count(LogLine.id)).where(LogLine.run_id == run_id)
        ).one()
        seq = last or 0
        room = cb.max_log_lines_per_run - (count or 0)
        if room <= 0:
            return 0
        kept = lines[:room] if len(lines) <= room else [*lines[: room - 1], ("system", "log limit reached; later lines dropped")]
        for stream, text in kept:
            seq += 1
            session.add(LogLine(run_id=run_id, seq=seq, stream=stream, text=scrub(text, secrets)))
        return len(kept)


def wire(runtime) -> None:
    """Let the web app accept Actions callbacks (bearer credential, or OIDC tokens for our URL)."""
    from app.engines.actions.engine import RunEvents, public_base_url

    audience = public_base_url(runtime.settings)
    issuer = runtime.settings.actions_oidc_issuer or issuer_for(runtime.settings.github_api_url)
    runtime.run_callbacks = RunCallbacks(
        engine=runtime.engine, handler=RunEvents(runtime), oidc=OIDCVerifier(audience=audience, issuer=issuer),
        secrets=tuple(runtime.settings.secret_values()),
    )
    log.debug("actions callbacks wired", audience=audience, issuer=issuer)
