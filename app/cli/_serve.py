"""CLI commands: serve, worker, migrate, replay."""

from __future__ import annotations

import functools
import signal
import time
import uuid
from pathlib import Path
from typing import Annotated

import typer

from app.cli._options import EnvFile, settings_from
from app.settings import Settings


def register(cli: typer.Typer) -> None:
    cli.command()(serve)
    cli.command()(worker)
    cli.command()(migrate)
    cli.command()(replay)


def migrate(env_file: EnvFile = None) -> None:
    """Apply the database migrations."""
    from app.db import make_engine
    from app.migrate import upgrade

    settings = settings_from(env_file)
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    typer.echo(f"database at head: {engine.url.render_as_string(hide_password=True)}")
    engine.dispose()


def missing_credentials_help(settings: Settings, url: str) -> str | None:
    """What to tell someone whose GitHub App settings are incomplete (None when nothing is missing)."""
    from app.web.app import missing_settings_message

    message = missing_settings_message(settings)  # the same words as the page at `/`
    if message is None:
        return None
    return "\n".join(
        [
            message,
            f"Register the App in a few clicks at {url}setup: GitHub creates it from app.yml and",
            "Draftsmith keeps its credentials, with no restart. Or register it by hand (GitHub > Settings >",
            "Developer settings > GitHub Apps > New GitHub App, webhook <your public URL>/api/github/webhooks),",
            f"put the settings in .env and restart. The page at {url} says the same.",
        ]
    )


def agents_help(settings: Settings) -> list[str]:
    """What stops agent runs on this host: the sandbox, or a missing default agent. Empty when nothing does."""
    from app.agents.base import find_binary, use_agents_dir
    from app.agents.installer import install_command
    from app.agents.registry import get_agent
    from app.engines.sandbox.backends import sandbox_problem
    from app.github.repo_config import DEFAULT_AGENT

    problems = []
    sandbox = sandbox_problem(settings)
    if sandbox:
        problems.append(f"draftsmith: agents cannot run: {sandbox}")
    # Said, not done: an install downloads hundreds of MB from a registry this host may not reach, and
    # several workers installing at once on a first assignment would race; the operator runs it once.
    use_agents_dir(settings.effective_agents_dir)
    binary = getattr(get_agent(DEFAULT_AGENT), "binary", None)
    if binary and find_binary(binary) is None:
        problems.append(
            f"draftsmith: the default agent, {DEFAULT_AGENT}, is not installed, so repositories that do not "
            f"choose another fail their runs. Install it (about 10 s, 550 MB) with:\n"
            f"    {install_command(DEFAULT_AGENT)}\n"
            f"  (in a checkout: uv run {install_command(DEFAULT_AGENT)}); `draftsmith agents` lists the others.")
    return problems


def warn_if_redis_has_no_password(settings: Settings) -> None:
    from app.logs import get_logger

    if settings.redis_url and settings.redis_password is None:
        get_logger().warning(
            "REDIS_URL has no password: any process that can reach this Redis, including code an agent runs "
            "under a weaker sandbox, could read or inject queue messages. Add one: redis://:PASSWORD@host:6379/0"
        )


class _StopFlag:
    """Set by SIGINT/SIGTERM; the supervision loop polls it."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, _frame) -> None:
        if self.signal is None:
            self.signal = signum
            typer.echo(f"draftsmith: {signal.Signals(signum).name} received, stopping...", err=True)

    def __call__(self) -> bool:
        return self.signal is not None


class _FileWatch:
    """Tells whether a file appeared, changed or went away since the last look (at most every `every` s)."""

    def __init__(self, path: Path, every: float = 0.5) -> None:
        self.path = path
        self.every = every
        self._next = 0.0
        self._seen = self._stamp()

    def _stamp(self):
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def changed(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.every
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        self._seen = stamp
        return True


def _restart_on_new_app_settings(supervisor, env_file: Path | None, path: Path, relay=None):
    """What `serve` does when /setup writes (or someone removes) the App settings file: every web and worker
    process is replaced by one that reads it. Settings are built once per process and passed down, so a
    fresh process is the one way every part of it (webhook secrets, the GitHub client, log scrubbing) moves
    to the new App together; the supervisor holds the listening socket, so no connection is refused meanwhile.
    """
    from app.cli._processes import REDIS_RANK
    from app.logs import configure_logging

    watch = _FileWatch(path)

    def tick() -> None:
        if not watch.changed():
            return
        try:
            settings = settings_from(env_file)
        except Exception as exc:  # restarted children would only crash on it: say so, keep the old ones
            typer.echo(f"draftsmith: cannot read the new settings ({path}), processes left as they are: {exc}",
                       err=True)
            return
        configure_logging(settings.log_format, settings.log_level, settings.secret_values())
        state = "written" if path.exists() else "removed"
        typer.echo(f"draftsmith: GitHub App settings {state} ({path}); restarting the web and worker processes "
                   "onto them", err=True)
        supervisor.replace(lambda spec: spec.stop_rank != REDIS_RANK)
        if settings.webhook_relay_url and relay is not None and not supervisor.has("relay"):
            supervisor.add(relay())  # /setup made a relay channel the App's webhook URL
        missing = settings.missing_github_settings()
        typer.echo("draftsmith: " + (f"still missing {', '.join(missing)}" if missing else
                                     f"connected to GitHub App {settings.github_app_id}"), err=True)

    return tick


def _supervise(specs, stop: _StopFlag, banner: str | None = None, tick=None) -> None:
    from app.supervisor import Supervisor

    supervisor = Supervisor(specs)
    try:
        supervisor.start()
        if banner:
            typer.echo(banner)
        supervisor.run_until(stop, tick=tick(supervisor) if tick else None)
    finally:
        # Also reached when start-up fails half way: never leave a child behind.
        supervisor.stop()
    typer.echo("draftsmith: stopped", err=True)


def serve(env_file: EnvFile = None) -> None:
    """Run the whole app on this machine: web, workers, sweeper, and an embedded Redis unless REDIS_URL is set."""
    from app.cli import _processes as processes
    from app.db import make_engine
    from app.logs import configure_logging
    from app.migrate import upgrade
    from app.queue import embedded_redis
    from app.relay.events import shown_channel
    from sqlalchemy.engine import make_url

    settings = settings_from(env_file)
    redis_directory = settings.data_dir / "redis"
    redis_password = None
    if settings.uses_embedded_redis:
        try:
            redis_password = embedded_redis.load_or_create_password(redis_directory)
        except (OSError, RuntimeError) as exc:
            typer.echo(f"draftsmith: {exc}", err=True)
            raise typer.Exit(1) from None
    secrets = settings.secret_values() + ([redis_password] if redis_password else [])
    configure_logging(settings.log_format, settings.log_level, secrets)
    warn_if_redis_has_no_password(settings)
    stop = _StopFlag()
    stop.install()

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    engine.dispose()

    try:
        listener = processes.listen(settings.host, settings.port)
    except OSError as exc:
        typer.echo(f"draftsmith: {exc}", err=True)
        raise typer.Exit(1) from None
    port = listener.getsockname()[1]
    shown_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"http://{shown_host}:{port}/"

    specs = []
    redis_url = settings.redis_url
    queue = "Redis (REDIS_URL)"
    if settings.uses_embedded_redis:
        redis_port = processes.free_port()
        redis_url = embedded_redis.url(redis_port, redis_password)
        specs.append(processes.redis_spec(redis_directory, redis_port, redis_password))
        password_file = redis_directory / embedded_redis.PASSWORD_FILE
        queue = f"embedded Redis at redis://127.0.0.1:{redis_port}/0 (password in {password_file})"
    env = processes.child_environment(processes.resolve_env_file(env_file), redis_url)
    specs += processes.web_specs(settings, listener, env)
    specs += processes.worker_specs(settings.worker_processes, settings.worker_threads, env,
                                    niceness=settings.worker_niceness)
    if settings.webhook_relay_url:
        specs.append(processes.relay_spec(f"{url.rstrip('/')}/api/github/webhooks", env))  # over loopback

    help_text = missing_credentials_help(settings, url)
    if help_text:
        typer.echo(help_text, err=True)
    for problem in agents_help(settings):
        typer.echo(problem, err=True)
    database = make_url(settings.effective_database_url).render_as_string(hide_password=True)
    banner = "\n".join(
        [
            f"Draftsmith is running at {url}",
            f"  webhooks: {(settings.public_url or url.rstrip('/'))}/api/github/webhooks"
            + (f" (and relayed from {shown_channel(settings.webhook_relay_url)})" if settings.webhook_relay_url else ""),
            f"  database: {database}",
            f"  queue:    {queue}",
            f"  processes: {settings.web_processes} web, {settings.worker_processes} worker"
            f" x {settings.worker_threads} threads for webhooks and {settings.run_threads} for runs"
            f" (the first also sweeps). Press Ctrl-C to stop.",
        ]
    )
    from app.settings import app_settings_path

    relay = functools.partial(processes.relay_spec, f"{url.rstrip('/')}/api/github/webhooks", env)
    restart = functools.partial(_restart_on_new_app_settings, env_file=env_file, path=app_settings_path(settings),
                                relay=relay)
    try:
        _supervise(specs, stop, banner, tick=restart)
    finally:
        listener.close()


def worker(
    env_file: EnvFile = None,
    processes: Annotated[int | None, typer.Option(help="Worker processes (default DRAFTSMITH_WORKER_PROCESSES).")] = None,
    threads: Annotated[int | None, typer.Option(help="Threads per process (default DRAFTSMITH_WORKER_THREADS).")] = None,
) -> None:
    """Run queue workers (and the sweeper) only, against a shared REDIS_URL and DATABASE_URL."""
    from app.cli import _processes as procs
    from app.logs import configure_logging

    settings = settings_from(env_file)
    configure_logging(settings.log_format, settings.log_level, settings.secret_values())
    warn_if_redis_has_no_password(settings)
    if settings.uses_embedded_redis:
        typer.echo(
            "draftsmith worker needs a shared queue: set REDIS_URL (and DATABASE_URL) to the Redis and "
            "database the web processes use. On one machine, `draftsmith serve` already runs workers.",
            err=True,
        )
        raise typer.Exit(2)
    if settings.database_url is None:
        typer.echo(
            f"draftsmith worker: DATABASE_URL is not set; using {settings.effective_database_url}, which only "
            "processes on this machine can share.",
            err=True,
        )
    for problem in agents_help(settings):
        typer.echo(problem, err=True)
    stop = _StopFlag()
    stop.install()
    env = procs.child_environment(procs.resolve_env_file(env_file), settings.redis_url)
    specs = procs.worker_specs(processes or settings.worker_processes, threads or settings.worker_threads, env)
    _supervise(specs, stop, f"draftsmith worker: {len(specs)} worker process(es) running (the first also sweeps).")


def replay(
    file: Annotated[Path, typer.Argument(help="JSON payload to send.", exists=True, dir_okay=False)],
    event: Annotated[str, typer.Option("--event", help="X-GitHub-Event, e.g. issues.")],
    url: Annotated[str | None, typer.Option(help="Webhook URL (default: this app's, from the settings).")] = None,
    delivery_id: Annotated[str | None, typer.Option(help="X-GitHub-Delivery (default: a fresh UUID).")] = None,
    env_file: EnvFile = None,
) -> None:
    """Sign a payload with the configured webhook secret and post it, as GitHub would."""
    import httpx

    from app.events.signature import sign

    settings = settings_from(env_file)
    if settings.github_webhook_secret is None:
        typer.echo("draftsmith replay: GITHUB_WEBHOOK_SECRET is not set, so nothing can be signed.", err=True)
        raise typer.Exit(2)
    if url is None:
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        url = f"http://{host}:{settings.port}/api/github/webhooks"
    body = file.read_bytes()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/draftsmith-replay",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body, settings.signing_secret or ""),
    }
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        typer.echo(f"draftsmith replay: could not reach {url}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{response.status_code} {response.reason_phrase}")
    typer.echo(f"delivery: {headers['X-GitHub-Delivery']}")
    if response.text:
        typer.echo(response.text)
    if response.status_code >= 400:
        raise typer.Exit(1)
