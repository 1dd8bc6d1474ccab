"""Renders state objects as the JSON GitHub answers with (REST responses and webhook payloads share them)."""

from __future__ import annotations

import base64
from typing import Any

from app.github.manifest import default_permissions
from app.fakehub.state import (
    App,
    CheckRun,
    Comment,
    FakeHubState,
    Installation,
    Issue,
    Label,
    Reaction,
    Repository,
    Review,
    ReviewComment,
    User,
    WorkflowRun,
    iso,
)

REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
# What the App asks for in app.yml and nothing more, so an endpoint the app calls without the permission
# for it is refused here as GitHub would refuse it.
APP_PERMISSIONS = default_permissions()
APP_EVENTS = ["check_run", "check_suite", "issue_comment", "issues", "pull_request", "pull_request_review",
              "pull_request_review_comment", "repository_dispatch"]


def node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0:{kind}{number}".encode()).decode().rstrip("=")


class Renderer:
    """Turns state into GitHub-shaped dicts; `base` is the fake's URL (API and web pages share it)."""

    def __init__(self, state: FakeHubState, base: str) -> None:
        self.state = state
        self.base = base.rstrip("/")

    # -- people and apps --------------------------------------------------------------------------
    def user(self, user: User | None) -> dict[str, Any] | None:
        if user is None:
            return None
        u = f"{self.base}/users/{user.login}"
        return {
            "login": user.login, "id": user.id, "node_id": node_id("User", user.id),
            "avatar_url": f"{self.base}/avatars/{user.login}", "gravatar_id": "", "url": u,
            "html_url": f"{self.base}/{user.login}", "followers_url": f"{u}/followers",
            "following_url": f"{u}/following{{/other_user}}", "gists_url": f"{u}/gists{{/gist_id}}",
            "starred_url": f"{u}/starred{{/owner}}{{/repo}}", "subscriptions_url": f"{u}/subscriptions",
            "organizations_url": f"{u}/orgs", "repos_url": f"{u}/repos", "events_url": f"{u}/events{{/privacy}}",
            "received_events_url": f"{u}/received_events", "type": user.type, "user_view_type": "public",
            "site_admin": False,
        }

    def app(self, app: App) -> dict[str, Any]:
        return {
            "id": app.id, "slug": app.slug, "node_id": node_id("Integration", app.id), "client_id": app.client_id,
            "owner": self.user(app.owner), "name": app.name, "description": "Draftsmith, served by fakehub",
            "external_url": self.base, "html_url": f"{self.base}/apps/{app.slug}",
            "created_at": iso(app.created_at), "updated_at": iso(app.created_at),
            "permissions": dict(APP_PERMISSIONS), "events": list(APP_EVENTS),
            "installations_count": len(self.state.installations),
        }

    def other_app(self, slug: str) -> dict[str, Any]:
        """Another app with check runs here; GitHub Actions keeps its real id and name."""
        app_id, name = (15368, "GitHub Actions") if slug == "github-actions" else (90000 + len(slug), slug.title())
        owner = self.state.user("github", type="Organization")
        since = iso(self.state.app.created_at) if self.state.app else None
        return {
            "id": app_id, "slug": slug, "node_id": node_id("Integration", app_id), "client_id": f"Iv1.{slug}",
            "owner": self.user(owner), "name": name, "description": "", "external_url": "https://github.com",
            "html_url": f"{self.base}/apps/{slug}", "created_at": since, "updated_at": since,
            "permissions": {"checks": "write"}, "events": ["check_run"],
        }

    def check_suite(self, suite) -> dict[str, Any]:
        repo = self.state.repos[suite.repo]
        u = f"{self.base}/repos/{suite.repo}/check-suites/{suite.id}"
        runs = [r for r in self.state.check_runs.values() if r.check_suite_id == suite.id]
        return {
            "id": suite.id, "node_id": node_id("CheckSuite", suite.id), "head_branch": suite.head_branch,
            "head_sha": suite.head_sha, "status": suite.status, "conclusion": suite.conclusion, "url": u,
            "before": None, "after": suite.head_sha, "pull_requests": self._pulls_at(repo, suite.head_sha),
            "app": self.other_app(suite.app_slug), "repository": self.repository(repo, full=False),
            "created_at": iso(suite.created_at), "updated_at": iso(suite.created_at),
            "head_commit": {"id": suite.head_sha, "tree_id": suite.head_sha, "message": "", "timestamp": iso(suite.created_at),
                            "author": {"name": "", "email": ""}, "committer": {"name": "", "email": ""}},
            "latest_check_runs_count": len(runs), "check_runs_url": f"{u}/check-runs", "rerequestable": True,
            "runs_rerequestable": True,
        }

    def installation(self, installation: Installation) -> dict[str, Any]:
        app = self.state.app
        assert app is not None
        return {
            "id": installation.id, "client_id": app.client_id, "account": self.user(installation.account),
            "repository_selection": "selected",
            "access_tokens_url": f"{self.base}/app/installations/{installation.id}/access_tokens",
            "repositories_url": f"{self.base}/installation/repositories",
            "html_url": f"{self.base}/settings/installations/{installation.id}",
            "app_id": app.id, "app_slug": app.slug, "target_id": installation.account.id,
            "target_type": "Organization" if installation.account.type == "Organization" else "User",
            "permissions": dict(APP_PERMISSIONS), "events": list(APP_EVENTS),
            "created_at": iso(installation.created_at), "updated_at": iso(installation.created_at),
            "single_file_name": None, "has_multiple_single_files": False, "single_file_paths": [],
            "suspended_by": None, "suspended_at": None,
        }

    # -- repositories -----------------------------------------------------------------------------
    def repository(self, repo: Repository, full: bool = True) -> dict[str, Any]:
        u = f"{self.base}/repos/{repo.full_name}"
        open_count = sum(1 for i in repo.issues.values() if i.state == "open")
        templates = {
            "archive_url": "/{archive_format}{/ref}", "assignees_url": "/assignees{/user}",
            "blobs_url": "/git/blobs{/sha}", "branches_url": "/branches{/branch}",
            "collaborators_url": "/collaborators{/collaborator}", "comments_url": "/comments{/number}",
            "commits_url": "/commits{/sha}", "compare_url": "/compare/{base}...{head}",
            "contents_url": "/contents/{+path}", "contributors_url": "/contributors",
            "deployments_url": "/deployments", "downloads_url": "/downloads", "events_url": "/events",
            "forks_url": "/forks", "git_commits_url": "/git/commits{/sha}", "git_refs_url": "/git/refs{/sha}",
            "git_tags_url": "/git/tags{/sha}", "hooks_url": "/hooks", "issue_comment_url": "/issues/comments{/number}",
            "issue_events_url": "/issues/events{/number}", "issues_url": "/issues{/number}",
            "keys_url": "/keys{/key_id}", "labels_url": "/labels{/name}", "languages_url": "/languages",
            "merges_url": "/merges", "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}", "pulls_url": "/pulls{/number}",
            "releases_url": "/releases{/id}", "stargazers_url": "/stargazers", "statuses_url": "/statuses/{sha}",
            "subscribers_url": "/subscribers", "subscription_url": "/subscription", "tags_url": "/tags",
            "teams_url": "/teams", "trees_url": "/git/trees{/sha}",
        }
        data: dict[str, Any] = {
            "id": repo.id, "node_id": node_id("Repository", repo.id), "name": repo.name,
            "full_name": repo.full_name, "private": repo.private, "owner": self.user(repo.owner),
            "html_url": f"{self.base}/{repo.full_name}", "description": None, "fork": repo.fork_of is not None, "url": u,
            **{key: u + suffix for key, suffix in templates.items()},
            "created_at": iso(repo.created_at), "updated_at": iso(repo.pushed_at), "pushed_at": iso(repo.pushed_at),
            "git_url": f"git://{self.base.split('://', 1)[-1]}/{repo.full_name}.git",
            "ssh_url": f"git@fakehub:{repo.full_name}.git", "clone_url": f"{self.base}/{repo.full_name}.git",
            "svn_url": f"{self.base}/{repo.full_name}", "homepage": None, "size": 1, "stargazers_count": 0,
            "watchers_count": 0, "language": None, "has_issues": True, "has_projects": False,
            "has_downloads": True, "has_wiki": False, "has_pages": False, "has_discussions": False,
            "forks_count": 0, "mirror_url": None, "archived": False, "disabled": False,
            "open_issues_count": open_count, "license": None, "allow_forking": True, "is_template": False,
            "web_commit_signoff_required": False, "topics": [], "visibility": "private" if repo.private else "public",
            "forks": 0, "open_issues": open_count, "watchers": 0, "default_branch": repo.default_branch,
        }
        if full:
            data.update({"network_count": 0, "subscribers_count": 0, "temp_clone_token": None,
                         "allow_squash_merge": True, "allow_merge_commit": True, "allow_rebase_merge": True,
                         "allow_auto_merge": False, "delete_branch_on_merge": False})
        return data

    # -- issues and comments ----------------------------------------------------------------------
    def reactions_summary(self, url: str, reactions: list[Reaction]) -> dict[str, Any]:
        summary: dict[str, Any] = {"url": url, "total_count": len(reactions)}
        for content in REACTIONS:
            summary[content] = sum(1 for r in reactions if r.content == content)
        return summary

    def label(self, repo: str, label: Label) -> dict[str, Any]:
        return {
            "id": label.id, "node_id": node_id("Label", label.id), "url": f"{self.base}/repos/{repo}/labels/{label.name}",
            "name": label.name, "color": label.color, "default": False, "description": label.description,
            "archived_at": None, "archived_by": None,
        }

    def author_association(self, repo_name: str, user: User) -> str:
        repo = self.state.repos.get(repo_name)
        if repo is None or user.type == "Bot":
            return "NONE"
        if user.login == repo.owner.login:
            return "OWNER"
        return "COLLABORATOR" if user.login in repo.permissions else "NONE"

    def issue(self, issue: Issue) -> dict[str, Any]:
        u = f"{self.base}/repos/{issue.repo}/issues/{issue.number}"
        comments = sum(1 for c in self.state.comments.values() if c.repo == issue.repo and c.issue_number == issue.number)
        data: dict[str, Any] = {
            "url": u, "repository_url": f"{self.base}/repos/{issue.repo}", "labels_url": f"{u}/labels{{/name}}",
            "comments_url": f"{u}/comments", "events_url": f"{u}/events",
            "html_url": f"{self.base}/{issue.repo}/{'pull' if issue.pull else 'issues'}/{issue.number}",
            "id": issue.id, "node_id": node_id("Issue", issue.id), "number": issue.number, "title": issue.title,
            "user": self.user(issue.user), "labels": [self.label(issue.repo, label) for label in issue.labels],
            "state": issue.state, "locked": False,
            "assignee": self.user(issue.assignees[0]) if issue.assignees else None,
            "assignees": [self.user(a) for a in issue.assignees], "milestone": None, "comments": comments,
            "created_at": iso(issue.created_at), "updated_at": iso(issue.updated_at), "closed_at": iso(issue.closed_at),
            "author_association": self.author_association(issue.repo, issue.user), "active_lock_reason": None,
            "body": issue.body, "reactions": self.reactions_summary(f"{u}/reactions", issue.reactions),
            "timeline_url": f"{u}/timeline", "performed_via_github_app": None, "state_reason": issue.state_reason,
        }
        if issue.pull is not None:
            pulls = f"{self.base}/repos/{issue.repo}/pulls/{issue.number}"
            data["draft"] = issue.pull.draft
            data["pull_request"] = {
                "url": pulls, "html_url": data["html_url"], "diff_url": data["html_url"] + ".diff",
                "patch_url": data["html_url"] + ".patch", "merged_at": None,
            }
        return data

    def comment(self, comment: Comment) -> dict[str, Any]:
        u = f"{self.base}/repos/{comment.repo}/issues/comments/{comment.id}"
        app = self.state.app
        return {
            "url": u, "html_url": f"{self.base}/{comment.repo}/issues/{comment.issue_number}#issuecomment-{comment.id}",
            "issue_url": f"{self.base}/repos/{comment.repo}/issues/{comment.issue_number}",
            "id": comment.id, "node_id": node_id("IssueComment", comment.id), "user": self.user(comment.user),
            "created_at": iso(comment.created_at), "updated_at": iso(comment.updated_at), "body": comment.body,
            "author_association": self.author_association(comment.repo, comment.user),
            "reactions": self.reactions_summary(f"{u}/reactions", comment.reactions),
            "performed_via_github_app": self.app(app) if comment.via_app and app else None,
        }

    def reaction(self, reaction: Reaction) -> dict[str, Any]:
        return {
            "id": reaction.id, "node_id": node_id("Reaction", reaction.id), "user": self.user(reaction.user),
            "content": reaction.content, "created_at": iso(reaction.created_at),
        }

    # -- pull requests ----------------------------------------------------------------------------
    def _branch(self, repo: Repository, ref: str, sha: str | None) -> dict[str, Any]:
        return {
            "label": f"{repo.owner.login}:{ref}", "ref": ref, "sha": sha or "0" * 40,
            "user": self.user(repo.owner), "repo": self.repository(repo, full=False),
        }

    def current_pull(self, issue: Issue, full: bool = True) -> dict[str, Any]:
        """The pull request as it is now: head from its branch (in the fork, for a fork's PR), base from ours."""
        pr = issue.pull
        assert pr is not None
        repo = self.state.repos[issue.repo]
        head_repo = self.state.repos[pr.head_repo] if pr.head_repo else repo
        return self.pull(issue, self._head_sha(head_repo, pr.head_ref), self._head_sha(repo, pr.base_ref), full)

    def pull(self, issue: Issue, head_sha: str | None, base_sha: str | None, full: bool = True) -> dict[str, Any]:
        pr = issue.pull
        assert pr is not None
        repo = self.state.repos[issue.repo]
        u = f"{self.base}/repos/{issue.repo}/pulls/{issue.number}"
        html = f"{self.base}/{issue.repo}/pull/{issue.number}"
        issue_url = f"{self.base}/repos/{issue.repo}/issues/{issue.number}"
        data: dict[str, Any] = {
            "url": u, "id": pr.id, "node_id": pr.node_id, "html_url": html, "diff_url": html + ".diff",
            "patch_url": html + ".patch", "issue_url": issue_url, "commits_url": f"{u}/commits",
            "review_comments_url": f"{u}/comments", "review_comment_url": f"{self.base}/repos/{issue.repo}/pulls/comments{{/number}}",
            "comments_url": f"{issue_url}/comments", "statuses_url": f"{self.base}/repos/{issue.repo}/statuses/{head_sha}",
            "number": issue.number, "state": issue.state, "locked": False, "title": issue.title,
            "user": self.user(issue.user), "body": issue.body,
            "labels": [self.label(issue.repo, label) for label in issue.labels], "milestone": None,
            "active_lock_reason": None, "created_at": iso(issue.created_at), "updated_at": iso(issue.updated_at),
            "closed_at": iso(issue.closed_at), "merged_at": None, "merge_commit_sha": None,
            "assignee": self.user(issue.assignees[0]) if issue.assignees else None,
            "assignees": [self.user(a) for a in issue.assignees],
            "requested_reviewers": [self.user(r) for r in pr.requested_reviewers], "requested_teams": [],
            "head": self._branch(self.state.repos[pr.head_repo] if pr.head_repo else repo, pr.head_ref, head_sha),
            "base": self._branch(repo, pr.base_ref, base_sha),
            "_links": {
                "self": {"href": u}, "html": {"href": html}, "issue": {"href": issue_url},
                "comments": {"href": f"{issue_url}/comments"}, "review_comments": {"href": f"{u}/comments"},
                "review_comment": {"href": f"{self.base}/repos/{issue.repo}/pulls/comments{{/number}}"},
                "commits": {"href": f"{u}/commits"}, "statuses": {"href": data_statuses(self.base, issue.repo, head_sha)},
            },
            "author_association": self.author_association(issue.repo, issue.user), "auto_merge": None,
            "draft": pr.draft,
        }
        if full:
            data.update({
                "merged": pr.merged, "mergeable": True, "rebaseable": True, "mergeable_state": "clean",
                "merged_by": None, "comments": sum(1 for c in self.state.comments.values()
                                                   if c.repo == issue.repo and c.issue_number == issue.number),
                "review_comments": sum(1 for c in self.state.review_comments.values()
                                       if c.repo == issue.repo and c.pull_number == issue.number),
                "maintainer_can_modify": pr.maintainer_can_modify, "commits": 1, "additions": 0, "deletions": 0,
                "changed_files": 0,
            })
        return data

    def review_comment(self, comment: ReviewComment) -> dict[str, Any]:
        u = f"{self.base}/repos/{comment.repo}/pulls/comments/{comment.id}"
        pull_url = f"{self.base}/repos/{comment.repo}/pulls/{comment.pull_number}"
        html = f"{self.base}/{comment.repo}/pull/{comment.pull_number}#discussion_r{comment.id}"
        data = {
            "url": u, "pull_request_review_id": comment.review_id, "id": comment.id,
            "node_id": node_id("PullRequestReviewComment", comment.id), "diff_hunk": "@@ -1 +1 @@",
            "path": comment.path, "commit_id": comment.commit_id, "original_commit_id": comment.commit_id,
            "user": self.user(comment.user), "body": comment.body, "created_at": iso(comment.created_at),
            "updated_at": iso(comment.updated_at), "html_url": html, "pull_request_url": pull_url,
            "author_association": self.author_association(comment.repo, comment.user),
            "_links": {"self": {"href": u}, "html": {"href": html}, "pull_request": {"href": pull_url}},
            "line": comment.line, "original_line": comment.line, "side": comment.side, "start_line": None,
            "original_start_line": None, "start_side": None, "position": comment.line,
            "original_position": comment.line, "subject_type": "line",
            "reactions": self.reactions_summary(f"{u}/reactions", comment.reactions),
        }
        if comment.in_reply_to_id is not None:
            data["in_reply_to_id"] = comment.in_reply_to_id
        return data

    def review(self, review: Review) -> dict[str, Any]:
        pull_url = f"{self.base}/repos/{review.repo}/pulls/{review.pull_number}"
        html = f"{self.base}/{review.repo}/pull/{review.pull_number}#pullrequestreview-{review.id}"
        return {
            "id": review.id, "node_id": node_id("PullRequestReview", review.id), "user": self.user(review.user),
            "body": review.body, "state": review.state, "html_url": html, "pull_request_url": pull_url,
            "_links": {"html": {"href": html}, "pull_request": {"href": pull_url}},
            "submitted_at": iso(review.submitted_at), "commit_id": review.commit_id,
            "author_association": self.author_association(review.repo, review.user),
        }

    # -- checks and actions -----------------------------------------------------------------------
    def check_run(self, run: CheckRun) -> dict[str, Any]:
        app = self.state.app
        assert app is not None
        u = f"{self.base}/repos/{run.repo}/check-runs/{run.id}"
        output = {
            "title": run.output.get("title"), "summary": run.output.get("summary"), "text": run.output.get("text"),
            "annotations_count": len(run.output.get("annotations", [])), "annotations_url": f"{u}/annotations",
        }
        repo = self.state.repos[run.repo]
        pulls = self._pulls_at(repo, run.head_sha)
        return {
            "id": run.id, "head_sha": run.head_sha, "node_id": node_id("CheckRun", run.id),
            "external_id": run.external_id or "", "url": u,
            "html_url": f"{self.base}/{run.repo}/runs/{run.id}", "details_url": run.details_url or "",
            "status": run.status, "conclusion": run.conclusion, "started_at": iso(run.started_at),
            "completed_at": iso(run.completed_at), "output": output, "name": run.name,
            "check_suite": {"id": run.check_suite_id},
            "app": self.app(app) if run.app_slug is None else self.other_app(run.app_slug), "pull_requests": pulls,
        }

    def _pulls_at(self, repo: Repository, sha: str) -> list[dict[str, Any]]:
        """The open same-repository PRs whose head is `sha`, as check payloads list them (forks' never)."""
        pulls = []
        for issue in repo.pulls:
            if (issue.state == "open" and issue.pull and issue.pull.head_repo is None
                    and self._head_sha(repo, issue.pull.head_ref) == sha):
                pulls.append({
                    "url": f"{self.base}/repos/{repo.full_name}/pulls/{issue.number}", "id": issue.pull.id,
                    "number": issue.number,
                    "head": {"ref": issue.pull.head_ref, "sha": sha,
                             "repo": {"id": repo.id, "url": f"{self.base}/repos/{repo.full_name}", "name": repo.name}},
                    "base": {"ref": issue.pull.base_ref, "sha": self._head_sha(repo, issue.pull.base_ref) or "0" * 40,
                             "repo": {"id": repo.id, "url": f"{self.base}/repos/{repo.full_name}", "name": repo.name}},
                })
        return pulls

    def _head_sha(self, repo: Repository, branch: str) -> str | None:
        from app.fakehub.git import branch_heads, open_repo, resolve_ref

        sha = branch_heads(repo).get(branch)
        return sha if sha is not None else resolve_ref(open_repo(repo.git_dir), branch)  # a tag, a sha, gone

    def workflow_run(self, run: WorkflowRun) -> dict[str, Any]:
        repo = self.state.repos[run.repo]
        u = f"{self.base}/repos/{run.repo}/actions/runs/{run.id}"
        return {
            "id": run.id, "name": "draftsmith", "node_id": node_id("WorkflowRun", run.id),
            "head_branch": run.head_branch, "head_sha": run.head_sha, "path": run.path,
            "display_title": run.display_title, "run_number": run.run_number, "event": run.event,
            "status": run.status, "conclusion": run.conclusion, "workflow_id": run.workflow_id,
            "url": u, "html_url": f"{self.base}/{run.repo}/actions/runs/{run.id}", "pull_requests": [],
            "created_at": iso(run.created_at), "updated_at": iso(run.updated_at), "run_attempt": 1,
            "run_started_at": iso(run.created_at), "jobs_url": f"{u}/jobs", "logs_url": f"{u}/logs",
            "check_suite_url": f"{self.base}/repos/{run.repo}/check-suites/{run.id}", "artifacts_url": f"{u}/artifacts",
            "cancel_url": f"{u}/cancel", "rerun_url": f"{u}/rerun", "previous_attempt_url": None,
            "workflow_url": f"{self.base}/repos/{run.repo}/actions/workflows/{run.workflow_id}",
            "head_commit": None, "repository": self.repository(repo, full=False),
            "head_repository": self.repository(repo, full=False),
        }

    def job(self, run: WorkflowRun, job: dict[str, Any]) -> dict[str, Any]:
        u = f"{self.base}/repos/{run.repo}/actions/jobs/{job['id']}"
        return {
            "id": job["id"], "run_id": run.id, "run_url": f"{self.base}/repos/{run.repo}/actions/runs/{run.id}",
            "node_id": node_id("Job", job["id"]), "head_sha": run.head_sha, "url": u,
            "html_url": f"{self.base}/{run.repo}/actions/runs/{run.id}/job/{job['id']}",
            "status": job.get("status", run.status), "conclusion": job.get("conclusion", run.conclusion),
            "created_at": iso(run.created_at), "started_at": iso(run.created_at), "completed_at": None,
            "name": job.get("name", "run"), "steps": job.get("steps", []),
            "check_run_url": f"{self.base}/repos/{run.repo}/check-runs/{job['id']}", "labels": ["ubuntu-latest"],
            "runner_id": None, "runner_name": None, "runner_group_id": None, "runner_group_name": None,
            "workflow_name": "draftsmith", "head_branch": run.head_branch, "run_attempt": 1,
        }


def data_statuses(base: str, repo: str, sha: str | None) -> str:
    return f"{base}/repos/{repo}/statuses/{sha}"
