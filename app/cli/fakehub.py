"""`draftsmith fakehub`: run the fake GitHub locally and write the settings our app needs to talk to it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

SETTINGS = ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY_PATH", "GITHUB_WEBHOOK_SECRET", "GITHUB_API_URL",
            "GITHUB_CLIENT_ID", "GITHUB_CLIENT_SECRET")
# What the fakehub extra installs (pyproject.toml); the app itself needs neither.
EXTRA_PACKAGES = ("dulwich", "openapi_core")
MISSING_EXTRA = (
    "draftsmith fakehub needs the fakehub extra ({missing} is not installed): "
    "pip install 'draftsmith[fakehub]', or `uv sync` in a checkout (the dev group includes it)."
)


def require_fakehub() -> None:
    """Exit with the install command when the fakehub extra is missing (the app itself needs neither)."""
    try:
        import app.fakehub.hub  # noqa: F401
        import app.fakehub.server  # noqa: F401
        import app.fakehub.spec  # noqa: F401
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in EXTRA_PACKAGES:
            raise
        typer.echo(MISSING_EXTRA.format(missing=exc.name.split(".")[0].replace("_", "-")), err=True)
        raise typer.Exit(2) from None


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """Set `values` in the env file at `path`, keeping any other lines it already holds."""
    kept = []
    if path.exists():
        kept = [line for line in path.read_text().splitlines() if line.split("=", 1)[0].strip() not in values]
    path.write_text("\n".join(kept + [f"{key}={value}" for key, value in values.items()]) + "\n")


def fakehub(
    port: Annotated[int, typer.Option(help="Port to listen on (127.0.0.1).")] = 8787,
    webhook_url: Annotated[str | None, typer.Option(help="Where to send webhooks, e.g. http://127.0.0.1:3000/api/github/webhooks.")] = None,
    env_file: Annotated[Path, typer.Option("--env-file", help="Settings file to write the GITHUB_* settings into.", dir_okay=False)] = Path(".env.fakehub"),
    repo: Annotated[list[str] | None, typer.Option(help="owner/name of a repository to create with the App installed (repeatable).")] = None,
) -> None:
    """Run a fake GitHub (REST, webhooks, git over HTTP) until Ctrl-C; `draftsmith serve --env-file PATH` then talks to it."""
    import uvicorn

    require_fakehub()
    from app.fakehub.hub import FakeHub
    from app.fakehub.server import create_fakehub
    from app.fakehub.spec import load

    started = time.monotonic()
    typer.echo("Loading GitHub's OpenAPI description (npm @octokit/openapi, installed on first use)...")
    load()
    hub = FakeHub(webhook_url=webhook_url)
    api_url = f"http://127.0.0.1:{port}"
    key_path = env_file.resolve().parent / "fakehub-app.pem"
    key_path.touch(mode=0o600, exist_ok=True)
    key_path.chmod(0o600)
    key_path.write_bytes(hub.private_key_pem)
    write_env_file(env_file, {
        "GITHUB_APP_ID": str(hub.app.id), "GITHUB_PRIVATE_KEY_PATH": str(key_path),
        "GITHUB_WEBHOOK_SECRET": hub.app.webhook_secret, "GITHUB_API_URL": api_url,
        # the dashboard's sign-in (the fake's authorize page lets you pick any of its users)
        "GITHUB_CLIENT_ID": hub.app.client_id, "GITHUB_CLIENT_SECRET": hub.app.client_secret,
    })
    for full_name in repo or []:
        owner, _, name = full_name.partition("/")
        hub.create_repo(owner, name)
        typer.echo(f"Created {full_name}: clone {api_url}/{full_name}.git")
    typer.echo(f"Registered App {hub.app.slug} (id {hub.app.id}, bot {hub.app.bot.login}).")
    typer.echo(f"Wrote {', '.join(SETTINGS)} to {env_file} and the App's private key to {key_path} (mode 0600).")
    nowhere = '(nowhere yet: PUT /_fakehub/webhook-url {"url": ...})'
    typer.echo(f"Webhooks go to {webhook_url or nowhere}.")
    typer.echo(f"Admin API: {api_url}/_fakehub/ (repos, users, faults, deliveries, requests). Ready in "
               f"{time.monotonic() - started:.1f} s; serving on {api_url} until Ctrl-C.")
    uvicorn.run(create_fakehub(hub), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    hub.close()


def register(cli: typer.Typer) -> None:
    cli.command("fakehub")(fakehub)
