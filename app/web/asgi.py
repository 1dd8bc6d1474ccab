"""ASGI entry point for uvicorn web processes: settings from the environment `serve` set, then create_app."""

from __future__ import annotations


def app_from_env():
    """uvicorn factory (`app.web.asgi:app_from_env --factory`): build settings once, then the app."""
    from app.logs import configure_logging
    from app.settings import settings_from_environment
    from app.web.app import create_app

    settings = settings_from_environment()
    configure_logging(settings.log_format, settings.log_level, settings.secret_values())
    return create_app(settings)


def serve_inherited_socket(fd: int) -> None:
    """Run uvicorn on a listening TCP socket inherited from `serve` (one port shared by web processes).

    Not `uvicorn --fd`: it wraps the descriptor as AF_UNIX, so asyncio never sets TCP_NODELAY on the
    accepted connections, and Nagle's algorithm with delayed ACKs held every keep-alive response ~40 ms
    (measured: 1.1k req/s on /healthz at 50 connections, uniform 43 ms latency). socket.socket(fileno=)
    reads the real family and protocol from the descriptor.
    """
    import socket

    import uvicorn

    sock = socket.socket(fileno=fd)
    config = uvicorn.Config(
        "app.web.asgi:app_from_env", factory=True, lifespan="on", log_level="warning",
        # Access logs cost about a fifth of the request budget; the app logs what matters itself.
        access_log=False,
        # Web processes answer GitHub directly or behind a proxy the operator configures; trusting
        # X-Forwarded-* from anyone was never wanted, and the middleware parsed headers on every request.
        proxy_headers=False,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="a Draftsmith web process on an inherited socket")
    parser.add_argument("--fd", type=int, required=True)
    serve_inherited_socket(parser.parse_args().fd)
