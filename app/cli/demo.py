"""`draftsmith demo`: the whole loop on this machine with nothing configured, against a fake GitHub.

It starts the fake GitHub (app/fakehub) in this process, `draftsmith serve` beside it on its embedded
default, a sample repository whose config runs the built-in `command` agent (a one-line fix, so no model
or key is needed), then assigns the bot on an issue and prints what a maintainer would see, as it happens.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from app.cli.fakehub import require_fakehub

REPO = "octo/hello"
PERSON = "maintainer"
FILES = {
    "README.md": "# Hello\n\nThis sentence has a tpyo in it.\n",
    ".github/draftsmith.yml": 'agent: command\ncommand: "sed -i s/tpyo/typo/ README.md && echo Fixed the typo."\n',
}
DEADLINE_SECONDS = 90


def register(cli: typer.Typer) -> None:
    cli.command("demo")(demo)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo(
    keep: Annotated[bool, typer.Option("--keep", help="Leave the fake GitHub and the app running to explore.")] = False,
) -> None:
    """Show the whole loop: an issue assigned to the bot becomes a reviewed-ready pull request."""
    require_fakehub()
    import httpx

    from app.fakehub.background import BackgroundServer
    from app.fakehub.hub import FakeHub
    from app.fakehub.server import create_fakehub
    from app.fakehub.spec import load

    started = time.monotonic()
    directory = Path(tempfile.mkdtemp(prefix="draftsmith-demo-"))
    typer.echo("Starting a fake GitHub (it checks every call against GitHub's OpenAPI description)...")
    hub = FakeHub(git_root=directory / "github")
    fake = BackgroundServer(create_fakehub(hub)).start()
    serve = None
    try:
        serve, app_url = _start_serve(directory, hub, fake.url)
        load()  # while serve starts
        _wait_ready(serve, app_url, directory / "app" / "serve.log")
        hub.state.webhook_url = f"{app_url}/api/github/webhooks"
        owner, name = REPO.split("/")
        hub.create_repo(owner, name, FILES)
        hub.add_user(PERSON, "User", {REPO: "write"})
        person = httpx.Client(base_url=fake.url, timeout=30,
                              headers={"X-Fakehub-Actor": PERSON, "Accept": "application/vnd.github+json"})
        number = person.post(f"/repos/{REPO}/issues", json={"title": "Fix the typo in the README"}).json()["number"]
        typer.echo(f"Created {REPO} with an issue (#{number}) on the fake GitHub; @{PERSON} assigns the bot.")
        person.post(f"/repos/{REPO}/issues/{number}/assignees", json={"assignees": [hub.app.bot.login]})
        pull = _follow(hub, number, started)
        typer.echo("\nThe pull request's diff:\n" + _diff(hub, pull))
        details = next((c.details_url for c in hub.state.check_runs.values() if c.details_url), None)
        typer.echo(f"Pull request: {fake.url}/{REPO}/pull/{pull.number}  (on the fake GitHub)")
        if details:
            typer.echo(f"Task page with the run's log: {details}")
        typer.echo(f"Done in {time.monotonic() - started:.0f} s.")
        if keep:
            typer.echo(f"\nStill running (--keep): the app at {app_url}, the fake GitHub at {fake.url}, files in "
                       f"{directory}. Ctrl-C stops them.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        if serve is not None:
            _stop(serve)
        fake.stop()
        hub.close()
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)


def _start_serve(directory: Path, hub, api_url: str) -> tuple[subprocess.Popen, str]:
    serve_dir = directory / "app"
    serve_dir.mkdir()
    key = serve_dir / "app.pem"
    key.write_bytes(hub.private_key_pem)
    key.chmod(0o600)
    port = _free_port()
    settings = {
        "GITHUB_APP_ID": str(hub.app.id), "GITHUB_PRIVATE_KEY_PATH": str(key),
        "GITHUB_WEBHOOK_SECRET": hub.app.webhook_secret, "GITHUB_API_URL": api_url,
        "DRAFTSMITH_PORT": str(port), "DRAFTSMITH_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DRAFTSMITH_LOG_LEVEL": "warning",
    }
    if shutil.which("bwrap") is None:
        # Only the demo's own one-line command runs; real agents need the sandbox (README: bubblewrap).
        typer.echo("bubblewrap is not installed, so the demo's command runs unsandboxed; install it before "
                   "running real agents.")
        settings["DRAFTSMITH_SANDBOX"] = "unsafe-local"
    (serve_dir / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "DRAFTSMITH_"))}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    executable = Path(sys.executable).parent / "draftsmith"
    command = [str(executable)] if executable.exists() else [sys.executable, "-m", "app.cli"]
    typer.echo("Starting `draftsmith serve` on its embedded default (SQLite, embedded Redis, a worker)...")
    process = subprocess.Popen([*command, "serve"], cwd=serve_dir, env=env, stdout=subprocess.DEVNULL,
                               stderr=open(serve_dir / "serve.log", "wb"), start_new_session=True)
    return process, f"http://127.0.0.1:{port}"


def _wait_ready(process: subprocess.Popen, url: str, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _fail(f"draftsmith serve exited; its log: {log}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    _fail("draftsmith serve did not get ready within 60 s")


def _follow(hub, number: int, started: float):
    """Print each thing the maintainer would see as it appears; returns the finished pull request."""
    seen: set[str] = set()
    deadline = time.monotonic() + DEADLINE_SECONDS

    def say(key: str, text: str) -> None:
        if key not in seen:
            seen.add(key)
            typer.echo(f"  {time.monotonic() - started:5.1f} s  {text}")

    bot = hub.app.bot.login
    while time.monotonic() < deadline:
        with hub.state.lock:
            issue = hub.state.repos[REPO].issues[number]
            pulls = list(hub.state.repos[REPO].pulls)
            checks = [c for c in hub.state.check_runs.values() if c.repo == REPO]
            progress = [c for c in hub.state.comments.values() if c.issue_number == number and c.user.login == bot]
        if any(r.user.login == bot for r in issue.reactions):
            say("reaction", "👀 the bot reacted to the assignment")
        if progress:
            say("comment", "💬 it posted its progress comment (and keeps editing it)")
        for pull in pulls:
            say(f"pr-{pull.number}", f"📝 draft pull request #{pull.number} opened: {pull.title}")
        for check in checks:
            if (check.output.get("title") or "").startswith("Continued on"):
                say(f"check-{check.id}-moved", "🔎 the check run moves with the PR's head (a new commit)")
            else:
                say(f"check-{check.id}-{check.status}", f"🔎 check run {check.status.replace('_', ' ')} on "
                    f"{check.head_sha[:7]}" + (f": {check.conclusion}" if check.conclusion else ""))
        done = [p for p in pulls if p.pull is not None and not p.pull.draft]
        finished = checks and max(checks, key=lambda c: c.id).status == "completed"
        if done:
            say("ready", f"✅ pull request #{done[0].number} is ready for review")
        if done and finished:
            return done[0]
        latest = max(checks, key=lambda c: c.id) if checks else None
        if latest is not None and latest.status == "completed" and latest.conclusion not in ("success", "neutral"):
            _fail(f"the task ended {latest.conclusion}: {latest.output.get('title', '')}")
        time.sleep(0.05)
    _fail(f"the task did not finish within {DEADLINE_SECONDS} s")


def _diff(hub, pull) -> str:
    repo = hub.state.repos[REPO]
    base, head = pull.pull.base_ref, pull.pull.head_ref
    result = subprocess.run(["git", "--git-dir", repo.git_dir, "diff", f"{base}...{head}"],
                            capture_output=True, text=True)
    return result.stdout or result.stderr


def _fail(message: str):
    typer.echo(f"draftsmith demo: {message}", err=True)
    raise typer.Exit(1)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)  # its files are about to go: no need to wait for a slow child
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
