"""REST routes for issues: issues, assignees, labels, issue comments and reactions (with their webhooks)."""

from __future__ import annotations

from app.fakehub.routing import Api, Ctx, HttpError, not_found
from app.fakehub.state import Comment, Issue, Label, Reaction, Repository, now

api = Api()


def find_issue(ctx: Ctx, repo: Repository) -> Issue:
    issue = repo.issues.get(int(ctx.params["issue_number"]))
    if issue is None:
        raise not_found()
    return issue


def find_comment(ctx: Ctx, repo: Repository) -> Comment:
    comment = ctx.state.comments.get(int(ctx.params["comment_id"]))
    if comment is None or comment.repo != repo.full_name:
        raise not_found()
    return comment


def can_triage(ctx: Ctx, repo: Repository) -> bool:
    if ctx.via_app:
        return True
    return (ctx.state.role(repo, ctx.actor.login) or "") in ("triage", "write", "maintain", "admin")


def new_issue(ctx: Ctx, repo: Repository, title: str, body: str | None) -> Issue:
    number = max(repo.issues, default=0) + 1
    issue = Issue(id=ctx.state.next_id(), number=number, repo=repo.full_name, title=title, body=body,
                  user=ctx.actor, via_app=ctx.via_app)
    repo.issues[number] = issue
    return issue


@api.route("POST", "/repos/{owner}/{repo}/issues")
def create_issue(ctx: Ctx):
    repo = ctx.repo
    issue = new_issue(ctx, repo, str(ctx.body["title"]), ctx.body.get("body"))
    ctx.emit("issues", ctx.event(repo, "opened", issue=ctx.render.issue(issue)))
    if can_triage(ctx, repo):
        for name in ctx.body.get("labels") or []:
            _add_label(ctx, repo, issue, name if isinstance(name, str) else name["name"])
        for login in ctx.body.get("assignees") or []:
            _assign(ctx, repo, issue, login)
    return 201, ctx.render.issue(issue)


@api.route("GET", "/repos/{owner}/{repo}/issues")
def list_issues(ctx: Ctx):
    repo = ctx.repo
    state = ctx.query.get("state", "open")
    issues = [i for i in sorted(repo.issues.values(), key=lambda i: -i.number) if state == "all" or i.state == state]
    return 200, [ctx.render.issue(i) for i in ctx.page(issues)]


@api.route("GET", "/repos/{owner}/{repo}/issues/{issue_number}")
def get_issue(ctx: Ctx):
    return 200, ctx.render.issue(find_issue(ctx, ctx.repo))


@api.route("PATCH", "/repos/{owner}/{repo}/issues/{issue_number}")
def update_issue(ctx: Ctx):
    repo = ctx.repo
    issue = find_issue(ctx, repo)
    for key in ("title", "body"):
        if key in ctx.body:
            setattr(issue, key, ctx.body[key])
    if ctx.body.get("state") in ("open", "closed") and ctx.body["state"] != issue.state:
        issue.state = ctx.body["state"]
        issue.closed_at = now() if issue.state == "closed" else None
        issue.state_reason = ctx.body.get("state_reason") or ("completed" if issue.state == "closed" else "reopened")
        ctx.emit("issues", ctx.event(repo, "closed" if issue.state == "closed" else "reopened", issue=ctx.render.issue(issue)))
    issue.updated_at = now()
    return 200, ctx.render.issue(issue)


def _emit(ctx: Ctx, repo: Repository, issue: Issue, action: str, **extra) -> None:
    """As GitHub: assigning or labelling a pull request (through the issues API too) is a `pull_request`
    event; `issues` events are for issues alone."""
    if issue.pull is None:
        ctx.emit("issues", ctx.event(repo, action, issue=ctx.render.issue(issue), **extra))
        return
    ctx.emit("pull_request", ctx.event(repo, action, number=issue.number, pull_request=ctx.render.current_pull(issue),
                                       **extra))


def _assign(ctx: Ctx, repo: Repository, issue: Issue, login: str) -> None:
    user = ctx.state.users.get(login)
    if user is None or any(a.login == login for a in issue.assignees):
        return
    issue.assignees.append(user)
    issue.updated_at = now()
    _emit(ctx, repo, issue, "assigned", assignee=ctx.render.user(user))


@api.route("POST", "/repos/{owner}/{repo}/issues/{issue_number}/assignees")
def add_assignees(ctx: Ctx):
    repo = ctx.repo
    issue = find_issue(ctx, repo)
    # Like GitHub, people without triage access are silently ignored rather than refused.
    if can_triage(ctx, repo):
        for login in ctx.body.get("assignees") or []:
            _assign(ctx, repo, issue, login)
    return 201, ctx.render.issue(issue)


@api.route("DELETE", "/repos/{owner}/{repo}/issues/{issue_number}/assignees")
def remove_assignees(ctx: Ctx):
    repo = ctx.repo
    issue = find_issue(ctx, repo)
    if can_triage(ctx, repo):
        for login in (ctx.body or {}).get("assignees") or []:
            for user in [a for a in issue.assignees if a.login == login]:
                issue.assignees.remove(user)
                issue.updated_at = now()
                _emit(ctx, repo, issue, "unassigned", assignee=ctx.render.user(user))
    return 200, ctx.render.issue(issue)


def _add_label(ctx: Ctx, repo: Repository, issue: Issue, name: str) -> None:
    label = repo.labels.get(name)
    if label is None:
        label = repo.labels[name] = Label(id=ctx.state.next_id(), name=name)
    if any(existing.name == name for existing in issue.labels):
        return
    issue.labels.append(label)
    issue.updated_at = now()
    _emit(ctx, repo, issue, "labeled", label=ctx.render.label(repo.full_name, label))


@api.route("POST", "/repos/{owner}/{repo}/issues/{issue_number}/labels")
def add_labels(ctx: Ctx):
    repo = ctx.repo
    issue = find_issue(ctx, repo)
    if not can_triage(ctx, repo):
        raise HttpError(403, "Must have triage access to add labels")
    body = ctx.body
    names = body if isinstance(body, list) else body.get("labels", []) if isinstance(body, dict) else [body]
    for name in names:
        _add_label(ctx, repo, issue, name if isinstance(name, str) else name["name"])
    return 200, [ctx.render.label(repo.full_name, label) for label in issue.labels]


@api.route("DELETE", "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}")
def remove_label(ctx: Ctx):
    repo = ctx.repo
    issue = find_issue(ctx, repo)
    match = [label for label in issue.labels if label.name == ctx.params["name"]]
    if not match:
        raise HttpError(404, "Label does not exist")
    issue.labels.remove(match[0])
    _emit(ctx, repo, issue, "unlabeled", label=ctx.render.label(repo.full_name, match[0]))
    return 200, [ctx.render.label(repo.full_name, label) for label in issue.labels]


# -- comments -----------------------------------------------------------------------------------------
@api.route("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
def create_comment(ctx: Ctx):
    repo = ctx.repo
    issue = find_issue(ctx, repo)
    comment = Comment(id=ctx.state.next_id(), repo=repo.full_name, issue_number=issue.number, user=ctx.actor,
                      body=ctx.body["body"], via_app=ctx.via_app)
    ctx.state.comments[comment.id] = comment
    issue.updated_at = now()
    ctx.emit("issue_comment", ctx.event(repo, "created", issue=ctx.render.issue(issue), comment=ctx.render.comment(comment)))
    return 201, ctx.render.comment(comment)


@api.route("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
def list_comments(ctx: Ctx):
    repo = ctx.repo
    issue = find_issue(ctx, repo)
    comments = [c for c in ctx.state.comments.values() if c.repo == repo.full_name and c.issue_number == issue.number]
    return 200, [ctx.render.comment(c) for c in ctx.page(comments)]


@api.route("GET", "/repos/{owner}/{repo}/issues/comments/{comment_id}")
def get_comment(ctx: Ctx):
    return 200, ctx.render.comment(find_comment(ctx, ctx.repo))


@api.route("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}")
def update_comment(ctx: Ctx):
    repo = ctx.repo
    comment = find_comment(ctx, repo)
    if not _may_edit(ctx, repo, comment.user.login):
        raise HttpError(403, "Resource not accessible by integration" if ctx.via_app else "Forbidden")
    previous = comment.body
    comment.body = ctx.body["body"]
    comment.updated_at = now()
    issue = repo.issues[comment.issue_number]
    ctx.emit("issue_comment", ctx.event(repo, "edited", changes={"body": {"from": previous}},
                                        issue=ctx.render.issue(issue), comment=ctx.render.comment(comment)))
    return 200, ctx.render.comment(comment)


@api.route("DELETE", "/repos/{owner}/{repo}/issues/comments/{comment_id}")
def delete_comment(ctx: Ctx):
    repo = ctx.repo
    comment = find_comment(ctx, repo)
    if not _may_edit(ctx, repo, comment.user.login):
        raise HttpError(403, "Forbidden")
    del ctx.state.comments[comment.id]
    issue = repo.issues[comment.issue_number]
    ctx.emit("issue_comment", ctx.event(repo, "deleted", issue=ctx.render.issue(issue), comment=ctx.render.comment(comment)))
    return 204, None


def _may_edit(ctx: Ctx, repo: Repository, author: str) -> bool:
    return ctx.actor.login == author or (ctx.state.role(repo, ctx.actor.login) or "") in ("write", "maintain", "admin") \
        or ctx.via_app


@api.route("GET", "/repos/{owner}/{repo}/issues/comments")
def list_repo_comments(ctx: Ctx):
    repo = ctx.repo
    return 200, [ctx.render.comment(c) for c in ctx.page([c for c in ctx.state.comments.values() if c.repo == repo.full_name])]


# -- reactions ----------------------------------------------------------------------------------------
def react(ctx: Ctx, reactions: list[Reaction]):
    for existing in reactions:
        if existing.user.login == ctx.actor.login and existing.content == ctx.body["content"]:
            return 200, ctx.render.reaction(existing)  # GitHub answers 200 for a reaction that already exists
    reaction = Reaction(id=ctx.state.next_id(), user=ctx.actor, content=ctx.body["content"])
    reactions.append(reaction)
    return 201, ctx.render.reaction(reaction)


@api.route("POST", "/repos/{owner}/{repo}/issues/{issue_number}/reactions")
def react_to_issue(ctx: Ctx):
    return react(ctx, find_issue(ctx, ctx.repo).reactions)


@api.route("GET", "/repos/{owner}/{repo}/issues/{issue_number}/reactions")
def list_issue_reactions(ctx: Ctx):
    return 200, [ctx.render.reaction(r) for r in ctx.page(find_issue(ctx, ctx.repo).reactions)]


@api.route("POST", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions")
def react_to_comment(ctx: Ctx):
    return react(ctx, find_comment(ctx, ctx.repo).reactions)


@api.route("GET", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions")
def list_comment_reactions(ctx: Ctx):
    return 200, [ctx.render.reaction(r) for r in ctx.page(find_comment(ctx, ctx.repo).reactions)]
