"""CLI commands `draftsmith kubernetes-run` and `kubernetes-agent` (a run pod's two containers) and
`draftsmith doctor kubernetes`."""

from __future__ import annotations

import asyncio
import os

import typer

from app.cli._options import EnvFile, settings_from

doctor = typer.Typer(help="Check that this server's set-up works.", no_args_is_help=True)


def register(cli: typer.Typer) -> None:
    cli.command("kubernetes-run")(kubernetes_run)
    cli.command("kubernetes-agent")(kubernetes_agent)
    cli.add_typer(doctor, name="doctor")


def kubernetes_run() -> None:
    """Run the agent of one Kubernetes run in this pod (the run's Job starts it) and report to Draftsmith."""
    from app.engines.actions.runner import ActionsRunError
    from app.engines.kubernetes.pod import PodRunError, execute

    try:
        code = asyncio.run(execute(dict(os.environ)))
    except (PodRunError, ActionsRunError) as exc:
        typer.echo(f"draftsmith kubernetes-run: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


def kubernetes_agent() -> None:
    """Run the agent and the tests the runner container of this pod asks for (the run's Job starts it)."""
    from app.engines.kubernetes.agent_container import serve

    raise typer.Exit(asyncio.run(serve(dict(os.environ))))


@doctor.command("kubernetes")
def doctor_kubernetes(env_file: EnvFile = None) -> None:
    """Check the cluster `runner: kubernetes` uses: reachable, permissions, namespace, image; print what is missing."""
    from app.engines.kubernetes.doctor import run_checks
    checks = run_checks(settings_from(env_file))
    for check in checks:
        typer.echo(f"{'ok  ' if check.ok else 'MISSING'} {check.what}" + ("" if check.ok else f"\n        {check.fix}"))
    missing = sum(not check.ok for check in checks)
    typer.echo("ready for runner: kubernetes" if not missing else f"{missing} thing(s) missing")
    raise typer.Exit(1 if missing else 0)
