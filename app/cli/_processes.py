"""The processes `serve` and `worker` supervise, and how each one is started."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from app.settings import Settings
from app.supervisor import ChildSpec
from app.settings import ENV_FILE_VARIABLE

# Stop order: stop taking webhooks first (the relay before the web processes it posts to), then let
# workers finish, and stop Redis last so workers can still acknowledge the jobs they were running.
RELAY_RANK, WEB_RANK, WORKER_RANK, REDIS_RANK = -1, 0, 1, 2


def child_environment(env_file: Path | None, redis_url: str | None) -> dict[str, str]:
    """The environment every child gets: ours, plus where the settings file is and the Redis URL."""
    env = dict(os.environ)
    env.pop(ENV_FILE_VARIABLE, None)
    if env_file is not None:
        env[ENV_FILE_VARIABLE] = str(env_file.resolve())
    if redis_url:
        # Environment variables win over the settings file, so children use the embedded Redis
        # `serve` started even when the file leaves REDIS_URL unset.
        env["REDIS_URL"] = redis_url
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def resolve_env_file(env_file: Path | None) -> Path | None:
    """The settings file in effect: the one given, else `.env` when present (as load_settings does)."""
    if env_file is not None:
        return env_file
    return Path(".env") if Path(".env").exists() else None


def listen(host: str, port: int) -> socket.socket:
    """Bind the web port once in the supervisor; web children share it, so restarting one never drops it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({exc.strerror}); set DRAFTSMITH_PORT to a free port") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def web_specs(settings: Settings, listener: socket.socket, env: dict[str, str]) -> list[ChildSpec]:
    fd = listener.fileno()
    # Our own launcher, not `uvicorn --fd` (see app.web.asgi.serve_inherited_socket: TCP_NODELAY).
    argv = [sys.executable, "-m", "app.web.asgi", "--fd", str(fd)]
    return [
        ChildSpec(name=f"web-{i}", argv=argv, env=env, pass_fds=(fd,), stop_rank=WEB_RANK)
        for i in range(1, max(1, settings.web_processes) + 1)
    ]


def worker_specs(processes: int, threads: int, env: dict[str, str], niceness: int = 0) -> list[ChildSpec]:
    """Dramatiq worker processes; the first also runs the periodic sweeper (one Python process fewer).

    The worker applies `niceness` itself, thread by thread (app.queue.worker.run_worker)."""
    argv = [sys.executable, "-m", "app.queue.worker", "--threads", str(max(1, threads)), "--niceness", str(niceness)]
    return [
        ChildSpec(
            name=f"worker-{i}",
            argv=argv + (["--sweep"] if i == 1 else []),
            env=env,
            stop_rank=WORKER_RANK,
        )
        for i in range(1, max(1, processes) + 1)
    ]


def relay_spec(target_url: str, env: dict[str, str]) -> ChildSpec:
    """The one webhook relay subscriber of a deployment (DRAFTSMITH_WEBHOOK_RELAY_URL), posting to `target_url`.

    A process of its own, not a task in a web process: there is one however many web processes
    share the port, a web restart does not drop the stream, and it imports only httpx."""
    return ChildSpec(name="relay", argv=[sys.executable, "-m", "app.relay", "--target", target_url], env=env,
                     stop_rank=RELAY_RANK)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_spec(directory: Path, port: int, password: str) -> ChildSpec:
    """The embedded Redis: loopback only, password required, AOF in `directory` so queued jobs survive restarts."""
    from app.queue import embedded_redis

    # Not EmbeddedRedis itself but the same configuration, run as a supervised child so a crashed
    # Redis is restarted and, in its own process group, it is not hit by the terminal's Ctrl-C
    # before the workers that still need it have stopped. Its start-up banner and warnings go to a
    # file beside its data, not over serve's console.
    config = embedded_redis.server_config(directory, port, password, logfile=directory / "redis.log")
    return ChildSpec(
        name="redis",
        argv=embedded_redis.server_argv(),
        input=config,
        stdout=subprocess.DEVNULL,  # "Reading config from stdin", printed before the logfile applies
        stop_rank=REDIS_RANK,
        wait_ready=lambda p: embedded_redis.wait_until_ready(p, port, password),
    )
