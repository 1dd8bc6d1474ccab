"""Every write Draftsmith makes to GitHub: reactions, the progress comment, the check run, the draft PR."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from githubkit.exception import RequestFailed

from app.github import actions_api, gitdata, render
from app.logs import get_logger
from app.models import Run, Task
from app.tasks import links
from app.tasks.service import TaskService
from app.tasks.states import ACTIVE, Stage, Status

CHECK_RUN_NAME = "Draftsmith"
# A retried delivery's attempts all fall within a minute (app.queue.retries); look a little further back.
REPLY_DEDUPE_WINDOW = timedelta(minutes=10)

# Check run conclusions by final task status (https://docs.github.com/rest/checks/runs).
_CONCLUSIONS = {
    Status.SUCCEEDED: "success",
    Status.FAILED: "failure",
    Status.CANCELLED: "cancelled",
    Status.TIMED_OUT: "timed_out",
    Status.NEEDS_ATTENTION: "action_required",
}
# Stages the PR body's checklist shows as they start (pushes and the end rewrite it as well).
_PR_STAGES = frozenset({Stage.AGENT, Stage.TESTS})
# Buttons on our check run: GitHub limits label to 20, description to 40, identifier to 20 characters.
CANCEL_ACTION = {"label": "Cancel", "description": "Stop this Draftsmith task", "identifier": "cancel"}
RETRY_ACTION = {"label": "Retry", "description": "Run this Draftsmith task again", "identifier": "retry"}


class Reporter:
    """Writes as the App's bot. Edits its own comment (found by a hidden marker), never anyone else's."""

    def __init__(self, gh, tasks: TaskService, *, identity, public_url: str | None = None,
                 link_secret: str | None = None) -> None:
        self.gh = gh
        self.tasks = tasks
        self.identity = identity
        self.public_url = (public_url or "").rstrip("/") or None
        self.link_secret = link_secret
        # Set by the run as it goes: hosts its sandbox's egress proxy refused, and whether it was isolated.
        self.blocked: list[render.Blocked] = []
        self.isolated = True
        # The PR bodies this reporter last wrote: a run rewrites its PR's checklist at every stage, and
        # only Draftsmith writes these sections, so reading the body back each time would only cost a call.
        self._pr_bodies: dict[int, str] = {}
        self._pr_lock = asyncio.Lock()
        # Handling a delivery again after a transient failure: a reply the first attempt posted is not repeated.
        self.retrying = False
        # Check runs left on older heads that GitHub refused to close (a 502 past the client's retries):
        # (id, the head they moved to), closed again when the task ends so none stays 'in progress'.
        self._unclosed: list[tuple[int, str]] = []

    @classmethod
    def for_runtime(cls, runtime, gh, tasks: TaskService, identity) -> Reporter:
        return cls(gh, tasks, identity=identity, public_url=runtime.settings.public_url,
                   link_secret=runtime.settings.signing_secret)

    def task_url(self, task: Task) -> str | None:
        """The signed link to the task's page (app.tasks.links), or None without a public URL."""
        return links.task_url(self.public_url, self.link_secret, task.id)

    @staticmethod
    def _split(task: Task) -> tuple[str, str]:
        owner, repo = task.repo_full_name.split("/", 1)
        return owner, repo

    # -- runs on the repository's Actions runners -----------------------------------------------------
    async def dispatch_run(self, repo_full_name: str, payload) -> actions_api.DispatchOutcome:
        owner, repo = repo_full_name.split("/", 1)
        return await actions_api.dispatch(self.gh, owner, repo, payload)

    async def cancel_workflow_run(self, repo_full_name: str, actions_run_id: int) -> bool:
        owner, repo = repo_full_name.split("/", 1)
        return await actions_api.cancel_actions_run(self.gh, owner, repo, actions_run_id)

    # -- replies -----------------------------------------------------------------------------------
    async def reply(self, repo_full_name: str, number: int, body: str) -> int:
        owner, repo = repo_full_name.split("/", 1)
        if self.retrying and (posted := await self._posted_already(owner, repo, number, body)) is not None:
            return posted
        resp = await self.gh.rest.issues.async_create_comment(owner, repo, number, data={"body": body})
        return resp.json()["id"]

    async def _posted_already(self, owner: str, repo: str, number: int, body: str) -> int | None:
        since = (datetime.now(UTC) - REPLY_DEDUPE_WINDOW).isoformat()
        comments = (await self.gh.rest.issues.async_list_comments(owner, repo, number, since=since,
                                                                  per_page=100)).json()
        return next((c["id"] for c in comments if c["body"] == body
                     and (c.get("user") or {}).get("login") == self.identity.bot_login), None)

    async def react(self, repo_full_name: str, *, issue_number: int | None = None, comment_id: int | None = None,
                    review_comment_id: int | None = None, content: str = "eyes") -> None:
        owner, repo = repo_full_name.split("/", 1)
        try:
            if review_comment_id is not None:
                await self.gh.rest.reactions.async_create_for_pull_request_review_comment(
                    owner, repo, review_comment_id, data={"content": content})
            elif comment_id is not None:
                await self.gh.rest.reactions.async_create_for_issue_comment(
                    owner, repo, comment_id, data={"content": content})
            elif issue_number is not None:
                await self.gh.rest.reactions.async_create_for_issue(owner, repo, issue_number, data={"content": content})
        except RequestFailed as exc:  # a reaction is a courtesy; never fail a task over it
            get_logger(repo=repo_full_name).warning("reaction failed", status=exc.response.status_code)

    async def adopt_progress_comment(self, task: Task) -> Task:
        """Record the progress comment an interrupted attempt posted without recording it (found by its marker),
        so the task keeps one comment instead of gaining a second."""
        if task.progress_comment_id is not None:
            return task
        owner, repo = self._split(task)
        created = task.created_at if task.created_at.tzinfo else task.created_at.replace(tzinfo=UTC)
        since = (created - timedelta(minutes=1)).isoformat()
        comments = (await self.gh.rest.issues.async_list_comments(owner, repo, task.issue_number, since=since,
                                                                  per_page=100)).json()
        for comment in comments:
            if ((comment.get("user") or {}).get("login") == self.identity.bot_login
                    and render.find_marker(comment.get("body")) == task.id):
                return self.tasks.update(task.id, progress_comment_id=comment["id"])
        return task

    # -- acknowledgement ---------------------------------------------------------------------------
    async def acknowledge(self, task: Task, run: Run, *, comment_id: int | None = None,
                          review_comment_id: int | None = None, react: bool = True, ahead: int | None = None) -> Task:
        """👀 on what asked and the progress comment; on a PR that exists already, a check run on its head.

        A new task's check run waits for its draft PR (open_draft): Draftsmith's checks live on the PR's
        head, never on the base branch. The writes are independent, so they go out together (bench/ack.py).
        `ahead`: queued tasks that start before this one, said in the progress comment.
        """
        writes = [self.progress(task, run, Stage.QUEUED, ahead=ahead)]
        if react:
            writes.append(self.react(task.repo_full_name, issue_number=None if (comment_id or review_comment_id)
                                     else task.issue_number, comment_id=comment_id,
                                     review_comment_id=review_comment_id))
        if task.check_run_id is None and task.pr_number is not None and task.branch:
            writes.append(self._create_check_run_on_branch(task, run))
        await asyncio.gather(*writes)
        return self.tasks.get(task.id)

    async def _create_check_run_on_branch(self, task: Task, run: Run) -> Task:
        owner, repo = self._split(task)
        head = await gitdata.branch_head(self.gh, owner, repo, task.branch)
        if head is None:
            return task
        return await self._create_check_run(task, run, head)

    async def _create_check_run(self, task: Task, run: Run, head_sha: str, stage: Stage | None = None) -> Task:
        owner, repo = self._split(task)
        data = {
            "name": CHECK_RUN_NAME,
            "head_sha": head_sha,
            "status": "queued" if task.status == Status.QUEUED.value else "in_progress",
            "external_id": str(task.id),
            "output": self._check_output(task, run, stage),
            "actions": [CANCEL_ACTION],
        }
        if run.started_at is not None:
            data["started_at"] = run.started_at.isoformat()
        if url := self.task_url(task):
            data["details_url"] = url
        resp = await self.gh.rest.checks.async_create(owner, repo, data=data)
        return self.tasks.update(task.id, check_run_id=resp.json()["id"], head_sha=head_sha)

    # -- the draft pull request, opened before the agent starts ---------------------------------------
    async def open_draft(self, task: Task, run: Run, branch_prefix: str = "draftsmith") -> Task:
        """The branch with an empty start commit, the draft PR linking the issue, and the check run on it.

        Raises gitdata.BaseBranchMissing when the task's base branch does not exist.
        """
        owner, repo = self._split(task)
        url = self.task_url(task)
        stage = Stage(run.stage) if run.stage else Stage.QUEUED
        previous = task.check_run_id  # a retry after "no changes": its check run stayed on a deleted branch
        left = await self._left_by_interrupted_draft(task)
        if left is None:
            base_sha, start_sha = await gitdata.start_commit(self.gh, owner, repo, task.base_branch,
                                                             render.start_commit_message(task, url))
            wanted = task.branch or gitdata.branch_name(branch_prefix, task.issue_number, task.title)
            branch = await gitdata.create_branch(self.gh, owner, repo, wanted, start_sha)
            task = self.tasks.update(task.id, branch=branch, base_sha=base_sha, head_sha=start_sha)
            pull_number = check_run_id = None
        else:
            branch, start_sha = task.branch, task.head_sha
            pull_number, check_run_id = left
        title = task.title or (task.instruction.splitlines()[0] if task.instruction else f"Draftsmith #{task.id}")
        body = render.pr_body(task, run, stage=stage.value, task_url=url)

        async def pull() -> int:
            if pull_number is not None:
                return pull_number
            return (await self.gh.rest.pulls.async_create(owner, repo, data={
                "title": title[:250], "head": branch, "base": task.base_branch, "body": body, "draft": True,
            })).json()["number"]

        async def check_run() -> Task:
            if check_run_id is not None:
                return self.tasks.update(task.id, check_run_id=check_run_id, head_sha=start_sha)
            return await self._create_check_run(task, run, start_sha, stage)

        number, task = await asyncio.gather(pull(), check_run())
        task = self.tasks.update(task.id, pr_number=number)
        if pull_number is None:
            self._pr_bodies[task.pr_number] = body
        if previous is not None and previous != task.check_run_id:
            await self._supersede(task, previous, start_sha)
        await self.progress(task, run, stage)  # now it names the draft PR
        return task

    async def _left_by_interrupted_draft(self, task: Task) -> tuple[int | None, int | None] | None:
        """(PR number, check run id), each None if not made, of the draft an attempt that died in open_draft
        left: it records the branch with its start commit first, then makes the PR and the check run without
        getting to record them. None when there is no such branch: a new one is made."""
        if task.pr_number is not None or not task.branch or not task.head_sha:
            return None
        owner, repo = self._split(task)
        if await gitdata.branch_head(self.gh, owner, repo, task.branch) != task.head_sha:
            return None  # deleted ("no changes") or never made: start afresh
        pulls, runs = await asyncio.gather(
            self.gh.rest.pulls.async_list(owner, repo, head=f"{owner}:{task.branch}", state="open"),
            self.gh.rest.checks.async_list_for_ref(owner, repo, task.head_sha, check_name=CHECK_RUN_NAME))
        pull = next((p["number"] for p in pulls.json() if render.find_marker(p.get("body"), "pr") == task.id), None)
        check = next((c["id"] for c in runs.json()["check_runs"] if c.get("external_id") == str(task.id)), None)
        get_logger(task_id=task.id).info("draft_resumed", pr_number=pull, check_run_id=check)
        return pull, check

    async def refresh_pr(self, task: Task, run: Run, stage: Stage | None = None, *, files=None,
                         summary: str | None = None, draft_reason: str | None = None) -> None:
        """Rewrite the PR body's checklist (and the sections given), keeping the rest as it is."""
        if task.pr_number is None:
            return
        owner, repo = self._split(task)
        async with self._pr_lock:  # each rewrite builds on the last one
            previous = self._pr_bodies.get(task.pr_number)
            if previous is None:
                pr = (await self.gh.rest.pulls.async_get(owner, repo, task.pr_number)).json()
                if pr["state"] != "open":
                    return
                previous = pr.get("body") or ""
            if not render.written_by_us(previous):
                self._pr_bodies[task.pr_number] = previous  # a person's PR: their description stays theirs
                return
            body = render.pr_body(task, run, files, run.tests_passed, previous=previous, summary=summary,
                                  draft_reason=draft_reason, stage=stage.value if stage else None,
                                  task_url=self.task_url(task))
            if body != previous:
                await self.gh.rest.pulls.async_update(owner, repo, task.pr_number, data={"body": body})
            self._pr_bodies[task.pr_number] = body

    async def head_moved(self, task: Task, run: Run, head_sha: str, *, files=None, summary: str | None = None) -> Task:
        """A commit of ours is the PR's new head: the check run moves there (a check run belongs to one
        commit), carrying status, output and buttons; the old one says where it went."""
        previous = task.check_run_id
        stage = Stage(run.stage) if run.stage else None
        writes = [self._create_check_run(task, run, head_sha, stage),
                  self.refresh_pr(task, run, stage, files=files, summary=summary)]
        if previous is not None:
            writes.append(self._supersede_or_remember(task, previous, head_sha))
        task, *_ = await asyncio.gather(*writes)
        return task

    async def close_stray_check_runs(self, task: Task) -> int:
        """Close this task's check runs on its branch's head that are neither its current one nor finished:
        an attempt that died right after pushing made one there without recording it. Returns how many."""
        if not task.branch:
            return 0
        owner, repo = self._split(task)
        head = await gitdata.branch_head(self.gh, owner, repo, task.branch)
        if head is None:
            return 0
        runs = (await self.gh.rest.checks.async_list_for_ref(owner, repo, head, check_name=CHECK_RUN_NAME)).json()
        strays = [c["id"] for c in runs["check_runs"] if c.get("external_id") == str(task.id)
                  and c["id"] != task.check_run_id and c.get("status") != "completed"]
        for check_run_id in strays:
            await self._supersede_or_remember(task, check_run_id, task.head_sha or head)
        return len(strays)

    async def _supersede_or_remember(self, task: Task, check_run_id: int, head_sha: str) -> None:
        try:
            await self._supersede(task, check_run_id, head_sha)
        except RequestFailed as exc:
            get_logger(task_id=task.id).warning("supersede_failed", check_run_id=check_run_id,
                                                status=exc.response.status_code)
            self._unclosed.append((check_run_id, head_sha))

    async def _supersede(self, task: Task, check_run_id: int, head_sha: str) -> None:
        owner, repo = self._split(task)
        await self.gh.rest.checks.async_update(owner, repo, check_run_id, data={
            "status": "completed", "conclusion": "neutral", "actions": [],
            "output": {"title": f"Continued on {head_sha[:7]}",
                       "summary": f"Draftsmith's check for this task moved to the newer commit {head_sha}."}})

    # -- progress ----------------------------------------------------------------------------------
    async def progress(self, task: Task, run: Run, stage: Stage, *, ahead: int | None = None) -> Task:
        """Create or edit the one progress comment of this task; an active run's stage is kept on its row."""
        owner, repo = self._split(task)
        if task.status in ACTIVE and run.stage != stage:
            run = self.tasks.reach_stage(run.id, stage) or run
        body = render.progress_comment(task, run, stage.value, task_url=self.task_url(task), blocked=self.blocked,
                                       isolated=self.isolated, ahead=ahead)
        if task.progress_comment_id is not None:
            try:
                await self.gh.rest.issues.async_update_comment(owner, repo, task.progress_comment_id,
                                                               data={"body": body})
                return task
            except RequestFailed as exc:
                if exc.response.status_code != 404:  # someone deleted it: write a new one
                    raise
        resp = await self.gh.rest.issues.async_create_comment(owner, repo, task.issue_number, data={"body": body})
        return self.tasks.update(task.id, progress_comment_id=resp.json()["id"])

    async def stage(self, task: Task, run: Run, stage: Stage) -> None:
        """A run moved to `stage`: it is recorded on the run; the progress comment, check run and PR follow."""
        task = await self.progress(task, run, stage)
        if task.check_run_id is None:
            return
        owner, repo = self._split(task)
        data = {"status": "in_progress", "output": self._check_output(task, run, stage),
                "actions": [CANCEL_ACTION]}
        if stage is Stage.WORKSPACE and run.started_at is not None:
            data["started_at"] = run.started_at.isoformat()
        writes = [self.gh.rest.checks.async_update(owner, repo, task.check_run_id, data=data)]
        if stage in _PR_STAGES:  # each edit is a webhook to every app on the repository: only the big steps
            writes.append(self.refresh_pr(task, run, stage))
        await asyncio.gather(*writes)

    def _check_output(self, task: Task, run: Run, stage: Stage | None = None) -> dict[str, str]:
        return render.check_run_output(task, run, stage=stage.value if stage else None, blocked=self.blocked,
                                       isolated=self.isolated)

    async def requeued(self, task: Task, run: Run) -> None:
        task = await self.progress(task, run, Stage.QUEUED)
        if task.check_run_id is not None:
            owner, repo = self._split(task)
            await self.gh.rest.checks.async_update(owner, repo, task.check_run_id, data={
                "status": "queued", "output": render.check_run_output(task, run), "actions": [CANCEL_ACTION]})

    async def finished(self, task: Task, run: Run) -> None:
        """Write a final state back everywhere it shows: never leave a stale 'working' comment.

        `run` is as the task service ended it: its stage says where it stopped, whoever reached it.
        """
        status = Status(task.status)
        stage = Stage(run.stage) if run.stage else Stage.QUEUED
        if status is Status.SUCCEEDED:
            stage = Stage.PLAN if task.mode == "plan" else Stage.PULL_REQUEST
        task = await self.progress(task, run, stage)
        if task.check_run_id is not None:
            owner, repo = self._split(task)
            conclusion = _CONCLUSIONS.get(status, "failure")
            if status is Status.SUCCEEDED and task.pr_number is None and task.mode != "plan":
                conclusion = "neutral"  # finished, but nothing to show: no changes
            elif status is Status.SUCCEEDED and run.tests_passed is False:
                conclusion = "failure"  # a draft PR whose tests fail: show red, the title says why
            data = {"status": "completed", "conclusion": conclusion,
                    "output": self._check_output(task, run, stage)}
            if status in (Status.FAILED, Status.TIMED_OUT, Status.CANCELLED, Status.NEEDS_ATTENTION):
                data["actions"] = [RETRY_ACTION]
            else:
                data["actions"] = []
            await self.gh.rest.checks.async_update(owner, repo, task.check_run_id, data=data)
        unclosed, self._unclosed = self._unclosed, []
        for check_run_id, head_sha in unclosed:
            if check_run_id != task.check_run_id:
                await self._supersede_or_remember(task, check_run_id, head_sha)
        if task.pr_number is not None:
            # A run that stopped early leaves its work on the branch, and the draft says why.
            reason = task.status_reason
            if status is not Status.SUCCEEDED:
                reason = f"{render.headline(status)}: {reason}" if reason else render.headline(status)
            await self.refresh_pr(task, run, stage, draft_reason=reason)

    async def link_details(self, task: Task, url: str) -> None:
        """Point the check run's details link at where the work happens (e.g. the Actions job)."""
        if task.check_run_id is None:
            return
        owner, repo = self._split(task)
        await self.gh.rest.checks.async_update(owner, repo, task.check_run_id, data={"details_url": url})

    # -- outcomes ----------------------------------------------------------------------------------
    async def plan(self, task: Task, plan_text: str) -> None:
        await self.reply(task.repo_full_name, task.issue_number, render.plan_comment(plan_text, task_id=task.id))

    async def no_changes(self, task: Task, run: Run, summary: str) -> Task:
        """Nothing to propose: a draft PR opened for this task is closed and its branch deleted."""
        comment = render.no_changes_comment(task, summary, closing=render.owns_pr(task))
        if not render.owns_pr(task):
            await self.reply(task.repo_full_name, task.issue_number, comment)
            return task
        owner, repo = self._split(task)
        await self.reply(task.repo_full_name, task.pr_number, comment)
        await self.gh.rest.pulls.async_update(owner, repo, task.pr_number, data={"state": "closed"})
        self._pr_bodies.pop(task.pr_number, None)
        if task.branch:
            await gitdata.delete_branch(self.gh, owner, repo, task.branch)
        # A retry opens a fresh draft; the closed one keeps the record.
        return self.tasks.update(task.id, pr_number=None)

    async def ci_note(self, task: Task, marker: str, body: str) -> bool:
        """A note about the PR's CI, once per head and kind however many suites report (`marker`)."""
        owner, repo = self._split(task)
        comments = (await self.gh.rest.issues.async_list_comments(owner, repo, task.pr_number, per_page=100)).json()
        if any(marker in (c.get("body") or "") for c in comments):
            return False
        await self.reply(task.repo_full_name, task.pr_number, body)
        return True

    async def ci_passed(self, task: Task, sha: str, attempts: int) -> None:
        """CI is green after a fix: say so and mark the PR ready, as a task that passed its tests does."""
        if await self.ci_note(task, render.ci_marker(sha, "fixed"), render.ci_fixed_comment(sha, attempts)):
            await self.conclude_pr(task, None, ready=True)

    async def pushed(self, task: Task, run: Run, files: list[str], result) -> None:
        """The agent's final commit is on the branch: the PR body lists the files and the summary."""
        await self.refresh_pr(task, run, Stage.COMMIT, files=files, summary=getattr(result, "summary", None))

    async def conclude_pr(self, task: Task, run: Run, *, ready: bool) -> None:
        """Mark the PR ready and ask the requester to review it, or leave it a draft."""
        if task.pr_number is None:
            return
        if not ready:
            return  # finished() writes the reason into the PR body
        owner, repo = self._split(task)
        pr = (await self.gh.rest.pulls.async_get(owner, repo, task.pr_number)).json()
        if not render.written_by_us(pr.get("body")):
            return  # a person's PR: whether it is ready, and who reviews it, is their call
        if pr.get("draft"):
            # REST cannot leave draft state; GraphQL's markPullRequestReadyForReview can.
            await self.gh.async_graphql(
                "mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) "
                "{ pullRequest { isDraft } } }",
                {"id": pr["node_id"]},
            )
        if task.requester and task.requester != self.identity.bot_login:
            try:
                await self.gh.rest.pulls.async_request_reviewers(owner, repo, task.pr_number,
                                                                 data={"reviewers": [task.requester]})
            except RequestFailed as exc:  # e.g. the requester is not a collaborator any more
                get_logger(task_id=task.id).warning("review request failed", status=exc.response.status_code)
