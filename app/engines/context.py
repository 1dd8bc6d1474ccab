"""Gather what the agent is told about its task: the issue, its comments and who wrote them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from app.agents.prompt import FailingCheck, PromptComment, PromptContext
from app.github import ci_checks
from app.github.repo_config import LoadedConfig, load_repo_config
from app.models import Artifact, Run, Task
from app.policy import has_permission, permission_from_response

@dataclass(frozen=True)
class RepoContext:
    """What both engines look up before a run: the repository, its config and the run's time limit."""

    repository: dict[str, Any]
    loaded: LoadedConfig
    base_branch: str
    time_limit_seconds: float
    time_limit_text: str

    @property
    def config(self):
        return self.loaded.config

    @property
    def default_branch(self) -> str:
        return self.repository["default_branch"]

    @property
    def refused(self) -> str | None:
        """Why the run must not start on this config (a retry after the file broke), or None."""
        blocking = self.loaded.blocking
        if not blocking:
            return None
        return ("the repository's config cannot be used, and no default stands in for it: "
                + "; ".join(str(error) for error in blocking[:5]))


async def repo_context(gh, task: Task, settings) -> RepoContext:
    owner, repo = task.repo_full_name.split("/", 1)
    repository = (await gh.rest.repos.async_get(owner, repo)).json()
    loaded = await load_repo_config(gh, owner, repo, repository["default_branch"])
    limit = float(loaded.config.max_runtime_minutes) * 60
    text = f"{loaded.config.max_runtime_minutes} minutes"
    if settings.run_time_limit_seconds and settings.run_time_limit_seconds < limit:
        limit, text = float(settings.run_time_limit_seconds), f"{settings.run_time_limit_seconds:g} seconds (the server's limit)"
    return RepoContext(repository, loaded, task.base_branch or repository["default_branch"], limit, text)


# Enough discussion to understand the request without flooding the prompt.
MAX_COMMENTS = 30


async def _trusted(gh, owner: str, repo: str, login: str, cache: dict[str, bool]) -> bool:
    """Write access or better: only such people's words are instructions; the rest is untrusted input."""
    if login not in cache:
        try:
            data = (await gh.rest.repos.async_get_collaborator_permission_level(owner, repo, login)).json()
            cache[login] = has_permission(permission_from_response(data), "write")
        except Exception:
            cache[login] = False
    return cache[login]


def _approved_plan(engine, task: Task) -> str | None:
    """The plan from the latest `/agent plan` on the same issue, which a later `/agent run` follows."""
    with Session(engine) as session:
        row = session.exec(
            select(Artifact.content)
            .join(Run, Run.id == Artifact.run_id)
            .join(Task, Task.id == Run.task_id)
            .where(Task.repo_full_name == task.repo_full_name, Task.issue_number == task.issue_number)
            .where(Task.mode == "plan", Artifact.kind == "plan", Task.id != task.id)
            .order_by(Artifact.id.desc())  # type: ignore[union-attr]
        ).first()
    return row


async def _failing_checks(gh, owner: str, repo: str, task: Task, own_app_id: int | None) -> list[FailingCheck]:
    """For a CI fix: what fails on the PR's head now, with the end of each Actions job's log."""
    if task.trigger != "ci" or task.pr_number is None or own_app_id is None:
        return []
    head = (await gh.rest.pulls.async_get(owner, repo, task.pr_number)).json()["head"]["sha"]
    state = await ci_checks.ci_state(gh, owner, repo, head, own_app_id, with_logs=True)
    return [FailingCheck(name=c.name, app=c.app, title=c.title, summary=c.summary, log_tail=c.log_tail)
            for c in state.failed]


async def gather(gh, owner: str, repo: str, task: Task, loaded, engine=None,
                 own_app_id: int | None = None) -> PromptContext:
    issue = (await gh.rest.issues.async_get(owner, repo, task.issue_number)).json()
    comments_raw = (await gh.rest.issues.async_list_comments(owner, repo, task.issue_number,
                                                             per_page=100)).json()
    cache: dict[str, bool] = {}
    bot_marker = "<!-- draftsmith:"
    comments = []
    for comment in comments_raw[-MAX_COMMENTS:]:
        body = comment.get("body") or ""
        if bot_marker in body:
            continue  # our own progress comments are not part of the discussion
        login = (comment.get("user") or {}).get("login") or "ghost"
        comments.append(PromptComment(author=login, body=body,
                                      author_trusted=await _trusted(gh, owner, repo, login, cache)))
    author = (issue.get("user") or {}).get("login") or "ghost"
    return PromptContext(
        repository=task.repo_full_name,
        issue_number=task.issue_number,
        issue_title=issue.get("title") or "",
        issue_body=issue.get("body") or "",
        issue_author=author,
        issue_author_trusted=await _trusted(gh, owner, repo, author, cache),
        instruction=task.instruction,
        requester=task.requester,
        comments=comments,
        is_pull_request=task.is_pull_request,
        extra_instructions=getattr(loaded, "instructions_text", None),
        plan_mode=task.mode == "plan",
        approved_plan=_approved_plan(engine, task) if engine is not None and task.mode == "run" else None,
        failing_checks=await _failing_checks(gh, owner, repo, task, own_app_id),
    )
