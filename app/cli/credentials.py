"""CLI commands: `credentials set|list|delete` (encrypted provider keys) and `keys rotate`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from app.cli._options import EnvFile, settings_from

credentials_cli = typer.Typer(help="Provider API keys (stored encrypted) that agents receive in their environment.",
                              no_args_is_help=True)
keys_cli = typer.Typer(help="The master key that encrypts stored credentials.", no_args_is_help=True)

InstallationOrName = Annotated[int | None, typer.Option(
    "--installation", help="GitHub App installation id (or name it with --owner / --repo owner/name).")]
Owner = Annotated[str | None, typer.Option("--owner", help="The organisation or user the App is installed on.")]
Repo = Annotated[str | None, typer.Option("--repo", help="owner/name (or a name with --owner): only for this "
                                                          "repository (overrides the installation-wide value).")]


def _scope(settings, installation: int | None, owner: str | None, repo: str | None) -> tuple[int, str | None]:
    """(installation id, owner/name or None), asking GitHub which installation covers a named owner or repo."""
    if repo and "/" not in repo:
        if not owner:
            raise typer.BadParameter("give --repo as owner/name, or add --owner")
        repo = f"{owner}/{repo}"
    if installation is not None:
        return installation, repo
    if not owner and not repo:
        raise typer.BadParameter("say where: --owner ORG|USER, --repo owner/name, or --installation ID")
    from app.github.client import GitHubApp, GitHubNotConfigured
    from app.github.installations import NoInstallation, find_installation

    try:
        app = GitHubApp(settings)
    except GitHubNotConfigured as exc:
        raise typer.BadParameter(f"{exc}; or pass --installation ID") from None
    who, _, name = (repo or owner or "").partition("/")
    try:
        found = find_installation(app, who, name or None)
    except NoInstallation as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"Installation {found.id} on {found.account} ({found.account_type}).", err=True)
    return found.id, repo


def register(cli: typer.Typer) -> None:
    cli.add_typer(credentials_cli, name="credentials")
    cli.add_typer(keys_cli, name="keys")


def _store(env_file):
    from app.credentials import CredentialStore, load_keyring
    from app.db import make_engine
    from app.migrate import upgrade

    settings = settings_from(env_file)
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    return settings, CredentialStore(engine, load_keyring(settings, announce=lambda m: typer.echo(m, err=True)))


@credentials_cli.command("set")
def set_credential(
    name: Annotated[str, typer.Argument(help="Environment variable name, e.g. ANTHROPIC_API_KEY or OPENAI_BASE_URL.")],
    installation: InstallationOrName = None,
    owner: Owner = None,
    repo: Repo = None,
    env_file: EnvFile = None,
) -> None:
    """Store a value, read from a hidden prompt or from standard input (never from the command line)."""
    from app.credentials import CredentialError

    installation, repo = _scope(settings_from(env_file), installation, owner, repo)
    if sys.stdin.isatty():
        value = typer.prompt(f"Value for {name}", hide_input=True)
    else:
        value = sys.stdin.read()
    value = value.strip()
    _, store = _store(env_file)
    try:
        store.set(installation, name, value, repository=repo)
    except CredentialError as exc:
        raise typer.BadParameter(str(exc)) from None
    scope = f"repository {repo.lower()}" if repo else "every repository"
    from app import audit

    audit.record(store.engine, actor=audit.shell_actor(), action="credential.set", repo=repo.lower() if repo else None,
                 installation_id=installation, subject=name, source="cli", details=f"for {scope}")
    typer.echo(f"Stored {name} for installation {installation}, {scope}.")


@credentials_cli.command("list")
def list_credentials(
    installation: Annotated[int | None, typer.Option("--installation", help="Only this installation.")] = None,
    repo: Repo = None,
    env_file: EnvFile = None,
) -> None:
    """Show stored names; values appear only as their last four characters."""
    _, store = _store(env_file)
    rows = store.list(installation, repo)
    if not rows:
        typer.echo("No credentials stored.")
        return
    typer.echo(f"{'INSTALLATION':<14}{'REPOSITORY':<32}{'NAME':<28}{'VALUE':<12}KEY")
    for row in rows:
        shown = f"…{row.last4}" if row.last4 else "(hidden)"
        typer.echo(f"{row.installation_id:<14}{row.repository or '(all)':<32}{row.name:<28}{shown:<12}{row.key_id}")


@credentials_cli.command("delete")
def delete_credential(name: str, installation: InstallationOrName = None, owner: Owner = None, repo: Repo = None,
                      env_file: EnvFile = None) -> None:
    """Remove a stored value."""
    installation, repo = _scope(settings_from(env_file), installation, owner, repo)
    _, store = _store(env_file)
    if not store.delete(installation, name, repository=repo):
        typer.echo(f"No {name} stored for installation {installation}{' in ' + repo if repo else ''}.", err=True)
        raise typer.Exit(1)
    from app import audit

    audit.record(store.engine, actor=audit.shell_actor(), action="credential.deleted",
                 repo=repo.lower() if repo else None, installation_id=installation, subject=name, source="cli")
    typer.echo(f"Deleted {name}.")


@keys_cli.command("rotate")
def rotate_keys(env_file: EnvFile = None) -> None:
    """Re-encrypt every stored credential under a new master key; safe to re-run if interrupted.

    With the embedded key file, a new key is generated and put first in the file (old keys stay for
    reading). With DRAFTSMITH_ENCRYPTION_KEY, put the new key first yourself (`new:KEY,old:KEY`), then run
    this; remove the old entry once it reports nothing left to rotate.
    """
    from app.credentials import KeyRing, key_file_path, write_key_file

    settings, store = _store(env_file)
    if settings.encryption_key is None:
        path = key_file_path(settings.data_dir)
        ring = store.keyring.with_current(KeyRing.generate())
        write_key_file(path, ring)  # before any row changes, so every new ciphertext has its key on disk
        typer.echo(f"New key {ring.current_id} written to {path.resolve()} (older keys kept for reading).")
    else:
        ring = store.keyring
    count = store.rotate(ring)
    from app import audit

    audit.record(store.engine, actor=audit.shell_actor(), action="keys.rotated", subject=ring.current_id,
                 source="cli", details=f"{count} credential(s) re-encrypted")
    typer.echo(f"Re-encrypted {count} credential(s) under key {ring.current_id}.")
