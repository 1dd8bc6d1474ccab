"""What a commit's CI says, read from GitHub: other apps' check suites, their failed runs, Actions job logs."""

from __future__ import annotations

from dataclasses import dataclass

from app.logs import scrub

ACTIONS_APP_SLUG = "github-actions"
FAILED = frozenset({"failure", "timed_out"})  # cancelled, skipped, neutral and stale are nobody's bug
LOG_TAIL_LINES = 60
LOG_TAIL_CHARS = 6_000
MAX_CHECKS = 8


@dataclass(frozen=True)
class FailedCheck:
    name: str
    app: str  # the app's name as GitHub shows it ("GitHub Actions")
    conclusion: str
    title: str
    summary: str
    url: str
    log_tail: str | None = None  # the end of an Actions job's log, scrubbed


@dataclass(frozen=True)
class CIState:
    """Other apps' suites on one commit: whether all are done, and which check runs failed."""

    completed: bool
    suites: int
    failed: list[FailedCheck]


async def ci_state(gh, owner: str, repo: str, sha: str, own_app_id: int, *, with_logs: bool = False,
                   secrets: list[str] | None = None) -> CIState:
    suites = (await gh.rest.checks.async_list_suites_for_ref(owner, repo, sha, per_page=100)).json()["check_suites"]
    others = [s for s in suites if (s.get("app") or {}).get("id") != own_app_id]
    completed = all(s["status"] == "completed" for s in others)
    failed: list[FailedCheck] = []
    if completed and any(s.get("conclusion") in FAILED for s in others):
        runs = (await gh.rest.checks.async_list_for_ref(owner, repo, sha, filter_="latest", per_page=100)).json()
        for run in runs["check_runs"]:
            app = run.get("app") or {}
            if app.get("id") == own_app_id or run.get("conclusion") not in FAILED:
                continue
            output = run.get("output") or {}
            tail = None
            if with_logs and app.get("slug") == ACTIONS_APP_SLUG:
                tail = await _job_log_tail(gh, owner, repo, run["id"], secrets or [])
            failed.append(FailedCheck(name=run["name"], app=app.get("name") or app.get("slug") or "an app",
                                      conclusion=run["conclusion"], title=output.get("title") or "",
                                      summary=(output.get("summary") or "")[:2_000],
                                      url=run.get("details_url") or run.get("html_url") or "", log_tail=tail))
            if len(failed) == MAX_CHECKS:
                break
    return CIState(completed=completed, suites=len(others), failed=failed)


async def _job_log_tail(gh, owner: str, repo: str, job_id: int, secrets: list[str]) -> str | None:
    """The last lines of an Actions job's log (its check run's id is the job's). GitHub answers with a
    redirect to a signed URL on another host, which httpx follows without our token."""
    try:
        text = (await gh.rest.actions.async_download_job_logs_for_workflow_run(owner, repo, job_id)).text
    except Exception:  # a log we cannot read leaves the check's summary; it is not worth failing over
        return None
    lines = text.rstrip("\n").split("\n")[-LOG_TAIL_LINES:]
    return scrub("\n".join(lines)[-LOG_TAIL_CHARS:], secrets)
