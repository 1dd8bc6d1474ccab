"""REST routes for pull requests: create/update/list, reviewers, reviews, review comments; plus GraphQL ready-for-review."""

from __future__ import annotations

import re
from typing import Any

from app.fakehub import git
from app.fakehub.payloads import node_id
from app.fakehub.routing import Api, Ctx, HttpError, not_found, validation_failed
from app.fakehub.state import Issue, PullRequest, Repository, Review, ReviewComment, now

api = Api()


def find_pull(ctx: Ctx, repo: Repository) -> Issue:
    issue = repo.issues.get(int(ctx.params["pull_number"]))
    if issue is None or issue.pull is None:
        raise not_found()
    return issue


def render_pull(ctx: Ctx, issue: Issue, full: bool = True) -> dict[str, Any]:
    return ctx.render.current_pull(issue, full)


def _head(ctx: Ctx, repo: Repository, value: str) -> tuple[Repository, str]:
    """`head` is "branch" or "owner:branch"; another owner means that owner's fork of this repository."""
    owner, sep, branch = value.partition(":")
    if not sep or owner == repo.owner.login:
        return repo, branch if sep else value
    fork = ctx.state.repos.get(f"{owner}/{repo.name}")
    if fork is None or fork.fork_of != repo.full_name:
        raise validation_failed("PullRequest", "head", "invalid")
    return fork, branch


@api.route("POST", "/repos/{owner}/{repo}/pulls")
def create_pull(ctx: Ctx):
    from app.fakehub.api_issues import new_issue

    repo = ctx.repo
    store = git.open_repo(repo.git_dir)
    head_repo, head = _head(ctx, repo, ctx.body["head"])
    head_store = git.open_repo(head_repo.git_dir) if head_repo is not repo else store
    base = ctx.body["base"]
    if git.resolve_ref(head_store, f"refs/heads/{head}") is None:
        raise validation_failed("PullRequest", "head", "invalid")
    if git.resolve_ref(store, f"refs/heads/{base}") is None:
        raise validation_failed("PullRequest", "base", "invalid")
    # As GitHub: the head must hold a commit the base does not (an empty commit counts).
    if head_repo is repo and git.resolve_ref(store, head) in git.ancestors(store, git.resolve_ref(store, base)):
        raise HttpError(422, "Validation Failed", [{"resource": "PullRequest", "code": "custom",
                                                    "message": f"No commits between {base} and {head}"}])
    for other in repo.pulls:
        if (other.state == "open" and other.pull and other.pull.head_ref == head and other.pull.base_ref == base
                and other.pull.head_repo == (None if head_repo is repo else head_repo.full_name)):
            raise HttpError(422, "Validation Failed", [{"resource": "PullRequest", "code": "custom",
                                                        "message": f"A pull request already exists for {repo.owner.login}:{head}."}])
    issue = new_issue(ctx, repo, ctx.body.get("title") or head, ctx.body.get("body"))
    pull_id = ctx.state.next_id()
    issue.pull = PullRequest(id=pull_id, head_ref=head, base_ref=base, draft=bool(ctx.body.get("draft")),
                             head_repo=None if head_repo is repo else head_repo.full_name,
                             maintainer_can_modify=ctx.body.get("maintainer_can_modify", True),
                             node_id=node_id("PullRequest", pull_id))
    data = render_pull(ctx, issue)
    ctx.emit("pull_request", ctx.event(repo, "opened", number=issue.number, pull_request=data))
    return 201, data


@api.route("GET", "/repos/{owner}/{repo}/pulls")
def list_pulls(ctx: Ctx):
    repo = ctx.repo
    state = ctx.query.get("state", "open")
    pulls = [i for i in sorted(repo.pulls, key=lambda i: -i.number) if state == "all" or i.state == state]
    if ctx.query.get("head"):
        owner, _, branch = ctx.query["head"].partition(":")
        pulls = [i for i in pulls if i.pull and i.pull.head_ref == branch
                 and (i.pull.head_repo or repo.full_name).split("/")[0] == owner]
    if ctx.query.get("base"):
        pulls = [i for i in pulls if i.pull and i.pull.base_ref == ctx.query["base"]]
    return 200, [render_pull(ctx, i, full=False) for i in ctx.page(pulls)]


@api.route("GET", "/repos/{owner}/{repo}/pulls/{pull_number}")
def get_pull(ctx: Ctx):
    return 200, render_pull(ctx, find_pull(ctx, ctx.repo))


@api.route("PATCH", "/repos/{owner}/{repo}/pulls/{pull_number}")
def update_pull(ctx: Ctx):
    repo = ctx.repo
    issue = find_pull(ctx, repo)
    assert issue.pull is not None
    changes: dict[str, Any] = {}
    for key in ("title", "body"):
        if key in ctx.body and ctx.body[key] != getattr(issue, key):
            changes[key] = {"from": getattr(issue, key)}
            setattr(issue, key, ctx.body[key])
    if "base" in ctx.body:
        issue.pull.base_ref = ctx.body["base"]
    if "maintainer_can_modify" in ctx.body:
        issue.pull.maintainer_can_modify = ctx.body["maintainer_can_modify"]
    issue.updated_at = now()
    action = None
    if ctx.body.get("state") in ("open", "closed") and ctx.body["state"] != issue.state:
        issue.state = ctx.body["state"]
        issue.closed_at = now() if issue.state == "closed" else None
        action = "closed" if issue.state == "closed" else "reopened"
    data = render_pull(ctx, issue)
    if changes:
        ctx.emit("pull_request", ctx.event(repo, "edited", number=issue.number, changes=changes, pull_request=data))
    if action:
        ctx.emit("pull_request", ctx.event(repo, action, number=issue.number, pull_request=data))
    return 200, data


@api.route("POST", "/repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers")
def request_reviewers(ctx: Ctx):
    repo = ctx.repo
    issue = find_pull(ctx, repo)
    assert issue.pull is not None
    for login in ctx.body.get("reviewers") or []:
        user = ctx.state.users.get(login)
        if user is None or (ctx.state.role(repo, login) is None and login != repo.owner.login):
            raise HttpError(422, "Reviews may only be requested from collaborators. One or more of the users or "
                                 "teams you specified is not a collaborator of the " f"{repo.full_name} repository.")
        if user not in issue.pull.requested_reviewers:
            issue.pull.requested_reviewers.append(user)
            ctx.emit("pull_request", ctx.event(repo, "review_requested", number=issue.number,
                                               requested_reviewer=ctx.render.user(user),
                                               pull_request=render_pull(ctx, issue)))
    return 201, render_pull(ctx, issue, full=False)


@api.route("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers")
def list_requested_reviewers(ctx: Ctx):
    issue = find_pull(ctx, ctx.repo)
    assert issue.pull is not None
    return 200, {"users": [ctx.render.user(u) for u in issue.pull.requested_reviewers], "teams": []}


# -- review comments and reviews ---------------------------------------------------------------------
def _new_review_comment(ctx: Ctx, repo: Repository, issue: Issue, data: dict[str, Any], commit_id: str,
                        review_id: int | None = None, reply_to: ReviewComment | None = None) -> ReviewComment:
    comment = ReviewComment(
        id=ctx.state.next_id(), repo=repo.full_name, pull_number=issue.number, user=ctx.actor, body=data["body"],
        path=reply_to.path if reply_to else data["path"], commit_id=commit_id,
        line=reply_to.line if reply_to else data.get("line") or data.get("position"),
        side=data.get("side", "RIGHT"), in_reply_to_id=reply_to.id if reply_to else None, review_id=review_id,
    )
    ctx.state.review_comments[comment.id] = comment
    return comment


@api.route("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/comments")
def list_review_comments(ctx: Ctx):
    repo = ctx.repo
    issue = find_pull(ctx, repo)
    comments = [c for c in ctx.state.review_comments.values() if c.repo == repo.full_name and c.pull_number == issue.number]
    return 200, [ctx.render.review_comment(c) for c in ctx.page(comments)]


@api.route("POST", "/repos/{owner}/{repo}/pulls/{pull_number}/comments")
def create_review_comment(ctx: Ctx):
    repo = ctx.repo
    issue = find_pull(ctx, repo)
    reply_to = None
    if ctx.body.get("in_reply_to"):
        reply_to = ctx.state.review_comments.get(int(ctx.body["in_reply_to"]))
        if reply_to is None:
            raise not_found()
    elif not ctx.body.get("path") or not ctx.body.get("commit_id"):
        raise validation_failed("PullRequestReviewComment", "path" if not ctx.body.get("path") else "commit_id", "missing_field")
    review = Review(id=ctx.state.next_id(), repo=repo.full_name, pull_number=issue.number, user=ctx.actor,
                    body="", state="COMMENTED", commit_id=ctx.body.get("commit_id") or (reply_to.commit_id if reply_to else ""))
    ctx.state.reviews[review.id] = review
    comment = _new_review_comment(ctx, repo, issue, ctx.body, review.commit_id, review.id, reply_to)
    ctx.emit("pull_request_review_comment", ctx.event(repo, "created", comment=ctx.render.review_comment(comment),
                                                      pull_request=render_pull(ctx, issue, full=False)))
    return 201, ctx.render.review_comment(comment)


@api.route("POST", "/repos/{owner}/{repo}/pulls/{pull_number}/comments/{comment_id}/replies")
def reply_to_review_comment(ctx: Ctx):
    repo = ctx.repo
    issue = find_pull(ctx, repo)
    parent = ctx.state.review_comments.get(int(ctx.params["comment_id"]))
    if parent is None or parent.repo != repo.full_name:
        raise not_found()
    comment = _new_review_comment(ctx, repo, issue, ctx.body, parent.commit_id, parent.review_id, parent)
    ctx.emit("pull_request_review_comment", ctx.event(repo, "created", comment=ctx.render.review_comment(comment),
                                                      pull_request=render_pull(ctx, issue, full=False)))
    return 201, ctx.render.review_comment(comment)


@api.route("GET", "/repos/{owner}/{repo}/pulls/comments/{comment_id}")
def get_review_comment(ctx: Ctx):
    repo = ctx.repo
    comment = ctx.state.review_comments.get(int(ctx.params["comment_id"]))
    if comment is None or comment.repo != repo.full_name:
        raise not_found()
    return 200, ctx.render.review_comment(comment)


@api.route("POST", "/repos/{owner}/{repo}/pulls/comments/{comment_id}/reactions")
def react_to_review_comment(ctx: Ctx):
    from app.fakehub.api_issues import react

    repo = ctx.repo
    comment = ctx.state.review_comments.get(int(ctx.params["comment_id"]))
    if comment is None or comment.repo != repo.full_name:
        raise not_found()
    return react(ctx, comment.reactions)


@api.route("POST", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews")
def create_review(ctx: Ctx):
    repo = ctx.repo
    issue = find_pull(ctx, repo)
    assert issue.pull is not None
    store = git.open_repo(repo.git_dir)
    commit_id = ctx.body.get("commit_id") or git.resolve_ref(store, issue.pull.head_ref) or ""
    state = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}.get(
        ctx.body.get("event") or "", "PENDING")
    if state in ("CHANGES_REQUESTED", "COMMENTED") and not ctx.body.get("body") and not ctx.body.get("comments"):
        raise HttpError(422, "Unprocessable Entity", ["Review Body is required"])
    review = Review(id=ctx.state.next_id(), repo=repo.full_name, pull_number=issue.number, user=ctx.actor,
                    body=ctx.body.get("body") or "", state=state, commit_id=commit_id)
    ctx.state.reviews[review.id] = review
    comments = [_new_review_comment(ctx, repo, issue, c, commit_id, review.id) for c in ctx.body.get("comments") or []]
    if state != "PENDING":
        pull_json = render_pull(ctx, issue, full=False)
        review_json = ctx.render.review(review)
        review_json["state"] = state.lower()  # webhook payloads spell review states in lower case
        ctx.emit("pull_request_review", ctx.event(repo, "submitted", review=review_json, pull_request=pull_json))
        for comment in comments:
            ctx.emit("pull_request_review_comment", ctx.event(repo, "created", comment=ctx.render.review_comment(comment),
                                                              pull_request=pull_json))
    return 200, ctx.render.review(review)


@api.route("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews")
def list_reviews(ctx: Ctx):
    repo = ctx.repo
    issue = find_pull(ctx, repo)
    reviews = [r for r in ctx.state.reviews.values() if r.repo == repo.full_name and r.pull_number == issue.number]
    return 200, [ctx.render.review(r) for r in ctx.page(reviews)]


# -- GraphQL: only what REST cannot do ------------------------------------------------------------------
_READY = re.compile(r"markPullRequestReadyForReview\s*\(\s*input\s*:\s*\{\s*pullRequestId\s*:\s*(\"([^\"]+)\"|\$(\w+))")


@api.route("POST", "/graphql")
def graphql(ctx: Ctx):
    """Supports the markPullRequestReadyForReview mutation; anything else is a GraphQL error, as GitHub answers."""
    body = ctx.body if isinstance(ctx.body, dict) else {}
    query = body.get("query")
    if not isinstance(query, str):
        raise HttpError(400, "Problems parsing JSON")
    found = _READY.search(query)
    if found is None:
        return 200, {"errors": [{"message": "fakehub supports only the markPullRequestReadyForReview mutation",
                                 "type": "NOT_SUPPORTED"}]}
    pull_node = found.group(2) or (body.get("variables") or {}).get(found.group(3))
    for repo in ctx.state.repos.values():
        for issue in repo.pulls:
            assert issue.pull is not None
            if issue.pull.node_id == pull_node and ctx.principal.may_access(repo.full_name):
                was_draft = issue.pull.draft
                issue.pull.draft = False
                issue.updated_at = now()
                if was_draft:
                    ctx.emit("pull_request", ctx.event(repo, "ready_for_review", number=issue.number,
                                                       pull_request=render_pull(ctx, issue)))
                return 200, {"data": {"markPullRequestReadyForReview": {"clientMutationId": None, "pullRequest": {
                    "id": pull_node, "number": issue.number, "isDraft": False,
                    "url": f"{ctx.render.base}/{repo.full_name}/pull/{issue.number}"}}}}
    return 200, {"data": {"markPullRequestReadyForReview": None}, "errors": [{
        "type": "NOT_FOUND", "path": ["markPullRequestReadyForReview"],
        "message": f"Could not resolve to a node with the global id of '{pull_node}'"}]}
