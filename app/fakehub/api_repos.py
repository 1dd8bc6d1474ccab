"""REST routes for repositories: metadata, contents, collaborator permission and the Git Data API."""

from __future__ import annotations

import base64
import time
from datetime import datetime, timezone
from typing import Any

from dulwich.objects import Blob, Commit, Tree

from app.fakehub import git
from app.fakehub.routing import Api, Ctx, HttpError, not_found, validation_failed
from app.fakehub.state import now

api = Api()


@api.route("GET", "/repos/{owner}/{repo}")
def get_repository(ctx: Ctx):
    data = ctx.render.repository(ctx.repo)
    if ctx.principal.kind == "user":
        role = ctx.state.role(ctx.repo, ctx.actor.login)
        data["permissions"] = _permission_flags(role)
    return 200, data


def _permission_flags(role: str | None) -> dict[str, bool]:
    order = ["read", "triage", "write", "maintain", "admin"]
    level = order.index(role) if role in order else (0 if role is None else -1)
    return {"pull": level >= 0, "triage": level >= 1, "push": level >= 2, "maintain": level >= 3, "admin": level >= 4}


@api.route("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission")
def get_collaborator_permission(ctx: Ctx):
    repo = ctx.repo
    user = ctx.state.users.get(ctx.params["username"])
    if user is None:
        raise not_found()
    role = ctx.state.role(repo, user.login)
    # GitHub folds maintain into write and triage into read for `permission`; `role_name` keeps the role.
    permission = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read"}.get(
        role or "", "none" if repo.private else "read")
    data = ctx.render.user(user)
    data["permissions"] = _permission_flags(role) | {"pull": permission != "none"}
    data["role_name"] = role or ("none" if repo.private else "read")
    return 200, {"permission": permission, "role_name": role or ("none" if repo.private else "read"), "user": data}


# -- contents ---------------------------------------------------------------------------------------
@api.route("GET", "/repos/{owner}/{repo}/contents/{path}")
def get_contents(ctx: Ctx):
    repo = ctx.repo
    store = git.open_repo(repo.git_dir)
    ref = ctx.query.get("ref") or repo.default_branch
    sha = git.resolve_ref(store, ref)
    if sha is None:
        raise HttpError(404, f"No commit found for the ref {ref}")
    path = ctx.params["path"].strip("/")
    found = git.read_path(store, sha, path)
    if found is None:
        raise not_found()
    kind, _mode, obj_sha = found
    if kind == "dir":
        tree = store[obj_sha]
        return 200, [_content_entry(ctx, repo.full_name, ref, f"{path}/{e.path.decode()}".strip("/"), e.mode, e.sha, store)
                     for e in tree.iteritems()]
    entry = _content_entry(ctx, repo.full_name, ref, path, _mode, obj_sha, store)
    data = store[obj_sha].data
    encoded = base64.b64encode(data).decode()
    # GitHub wraps the base64 body at 60 characters.
    entry.update({"content": "\n".join(encoded[i:i + 60] for i in range(0, len(encoded), 60)) + "\n",
                  "encoding": "base64"})
    return 200, entry


def _content_entry(ctx: Ctx, full_name: str, ref: str, path: str, mode: int, sha: bytes, store) -> dict[str, Any]:
    is_dir = isinstance(store[sha], Tree)
    url = f"{ctx.render.base}/repos/{full_name}/contents/{path}?ref={ref}"
    git_url = f"{ctx.render.base}/repos/{full_name}/git/{'trees' if is_dir else 'blobs'}/{sha.decode()}"
    html = f"{ctx.render.base}/{full_name}/{'tree' if is_dir else 'blob'}/{ref}/{path}"
    return {
        "type": "dir" if is_dir else "file", "size": 0 if is_dir else len(store[sha].data),
        "name": path.rsplit("/", 1)[-1], "path": path, "sha": sha.decode(), "url": url, "git_url": git_url,
        "html_url": html, "download_url": None if is_dir else f"{ctx.render.base}/raw/{full_name}/{ref}/{path}",
        "_links": {"self": url, "git": git_url, "html": html},
    }


# -- git data: blobs, trees, commits, refs ----------------------------------------------------------
@api.route("POST", "/repos/{owner}/{repo}/git/blobs")
def create_blob(ctx: Ctx):
    repo = ctx.repo
    content = ctx.body["content"]
    data = base64.b64decode(content) if ctx.body.get("encoding") == "base64" else content.encode()
    sha = git.create_blob(git.open_repo(repo.git_dir), data)
    return 201, {"sha": sha, "url": f"{ctx.render.base}/repos/{repo.full_name}/git/blobs/{sha}"}


@api.route("GET", "/repos/{owner}/{repo}/git/blobs/{file_sha}")
def get_blob(ctx: Ctx):
    repo = ctx.repo
    store = git.open_repo(repo.git_dir)
    obj = _object(store, ctx.params["file_sha"], Blob)
    sha = obj.id.decode()
    return 200, {"sha": sha, "node_id": f"B_{sha[:20]}", "size": len(obj.data),
                 "url": f"{ctx.render.base}/repos/{repo.full_name}/git/blobs/{sha}",
                 "content": base64.b64encode(obj.data).decode(), "encoding": "base64"}


@api.route("POST", "/repos/{owner}/{repo}/git/trees")
def create_tree(ctx: Ctx):
    repo = ctx.repo
    store = git.open_repo(repo.git_dir)
    base_tree = ctx.body.get("base_tree")
    if base_tree is not None:
        _object(store, base_tree, Tree, status=422)
    entries = []
    for item in ctx.body["tree"]:
        mode = int(item["mode"], 8)
        if "content" in item and item["content"] is not None:
            entries.append((item["path"], mode, git.create_blob(store, item["content"].encode())))
        elif item.get("sha") is None:
            entries.append((item["path"], mode, None))
        else:
            if item["sha"].encode() not in store.object_store:
                raise validation_failed("Tree", "tree.sha", "invalid", f"tree.sha {item['sha']} is not a valid blob")
            entries.append((item["path"], mode, item["sha"]))
    sha = git.create_tree(store, base_tree, entries)
    return 201, _tree(ctx, repo.full_name, store, sha)


@api.route("GET", "/repos/{owner}/{repo}/git/trees/{tree_sha}")
def get_tree(ctx: Ctx):
    repo = ctx.repo
    store = git.open_repo(repo.git_dir)
    sha = git.resolve_ref(store, ctx.params["tree_sha"]) or ctx.params["tree_sha"]
    obj = store[sha.encode()] if sha.encode() in store.object_store else None
    if isinstance(obj, Commit):
        sha = obj.tree.decode()
    return 200, _tree(ctx, repo.full_name, store, _object(store, sha, Tree).id.decode(),
                      recursive=bool(ctx.query.get("recursive")))


def _tree(ctx: Ctx, full_name: str, store, sha: str, recursive: bool = False) -> dict[str, Any]:
    items = []

    def walk(tree_sha: bytes, prefix: str) -> None:
        for entry in store[tree_sha].iteritems():
            path = f"{prefix}{entry.path.decode()}"
            is_tree = isinstance(store[entry.sha], Tree)
            item = {"path": path, "mode": f"{entry.mode:06o}", "type": "tree" if is_tree else "blob",
                    "sha": entry.sha.decode(),
                    "url": f"{ctx.render.base}/repos/{full_name}/git/{'trees' if is_tree else 'blobs'}/{entry.sha.decode()}"}
            if not is_tree:
                item["size"] = len(store[entry.sha].data)
            items.append(item)
            if is_tree and recursive:
                walk(entry.sha, path + "/")

    walk(sha.encode(), "")
    return {"sha": sha, "url": f"{ctx.render.base}/repos/{full_name}/git/trees/{sha}", "tree": items, "truncated": False}


@api.route("POST", "/repos/{owner}/{repo}/git/commits")
def create_commit(ctx: Ctx):
    repo = ctx.repo
    store = git.open_repo(repo.git_dir)
    _object(store, ctx.body["tree"], Tree, status=422)
    for parent in ctx.body.get("parents", []):
        _object(store, parent, Commit, status=422)
    author = _signature(ctx.body.get("author"), ctx)
    committer = _signature(ctx.body.get("committer"), ctx) if ctx.body.get("committer") else author
    sha = git.create_commit(store, ctx.body["message"], ctx.body["tree"], ctx.body.get("parents", []), author, committer)
    if ctx.via_app:
        _verified(ctx).add(sha)
    return 201, _git_commit(ctx, repo.full_name, store, sha)


@api.route("GET", "/repos/{owner}/{repo}/git/commits/{commit_sha}")
def get_git_commit(ctx: Ctx):
    repo = ctx.repo
    store = git.open_repo(repo.git_dir)
    return 200, _git_commit(ctx, repo.full_name, store, _object(store, ctx.params["commit_sha"], Commit).id.decode())


def _verified(ctx: Ctx) -> set[str]:
    # Commits the App makes through the API are signed by GitHub, so they show as verified.
    return ctx.state.verified_commits


def _signature(data: dict[str, Any] | None, ctx: Ctx) -> git.Signature:
    if not data:
        login = ctx.actor.login
        return git.default_signature(login, f"{ctx.actor.id}+{login}@users.noreply.fakehub")
    moment = int(time.time())
    if data.get("date"):
        moment = int(datetime.fromisoformat(data["date"].replace("Z", "+00:00")).timestamp())
    return git.Signature(name=data["name"], email=data["email"], timestamp=moment)


def _person(raw: bytes, timestamp: int) -> dict[str, Any]:
    text = raw.decode()
    name, _, email = text.partition(" <")
    return {"name": name, "email": email.rstrip(">"),
            "date": datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _git_commit(ctx: Ctx, full_name: str, store, sha: str) -> dict[str, Any]:
    commit = store[sha.encode()]
    base = f"{ctx.render.base}/repos/{full_name}"
    verified = sha in _verified(ctx)
    return {
        "sha": sha, "node_id": f"C_{sha[:20]}", "url": f"{base}/git/commits/{sha}",
        "html_url": f"{ctx.render.base}/{full_name}/commit/{sha}",
        "author": _person(commit.author, commit.author_time), "committer": _person(commit.committer, commit.commit_time),
        "message": commit.message.decode(errors="replace"),
        "tree": {"sha": commit.tree.decode(), "url": f"{base}/git/trees/{commit.tree.decode()}"},
        "parents": [{"sha": p.decode(), "url": f"{base}/git/commits/{p.decode()}",
                     "html_url": f"{ctx.render.base}/{full_name}/commit/{p.decode()}"} for p in commit.parents],
        "verification": {"verified": verified, "reason": "valid" if verified else "unsigned",
                         "signature": None, "payload": None, "verified_at": None},
    }


def _object(store, sha: str, kind: type, status: int = 404):
    key = sha.encode()
    if len(sha) != 40 or key not in store.object_store or not isinstance(store[key], kind):
        if status == 422:
            raise HttpError(422, f"{kind.__name__} not found" if kind is not Tree else "Invalid tree info")
        raise not_found()
    return store[key]


def _ref_json(ctx: Ctx, full_name: str, name: str, sha: str) -> dict[str, Any]:
    base = f"{ctx.render.base}/repos/{full_name}"
    return {"ref": name, "node_id": f"REF_{name}", "url": f"{base}/git/{name}",
            "object": {"type": "commit", "sha": sha, "url": f"{base}/git/commits/{sha}"}}


@api.route("GET", "/repos/{owner}/{repo}/git/ref/{ref}")
def get_ref(ctx: Ctx):
    repo = ctx.repo
    store = git.open_repo(repo.git_dir)
    name = "refs/" + ctx.params["ref"]
    if name.encode() not in store.refs:
        raise not_found()
    return 200, _ref_json(ctx, repo.full_name, name, store.refs[name.encode()].decode())


@api.route("GET", "/repos/{owner}/{repo}/git/matching-refs/{ref}")
def list_matching_refs(ctx: Ctx):
    repo = ctx.repo
    store = git.open_repo(repo.git_dir)
    prefix = "refs/" + ctx.params["ref"]
    refs = sorted(n.decode() for n in store.refs.allkeys() if n.decode().startswith(prefix) and n != b"HEAD")
    return 200, [_ref_json(ctx, repo.full_name, n, store.refs[n.encode()].decode()) for n in refs]


def _refuse_workflow_changes(ctx: Ctx, store, old: str | None, new: str) -> None:
    """As GitHub: an App without the `workflows` permission may not create or update a workflow file."""
    token = ctx.principal.token
    if token is None or token.permissions.get("workflows") == "write":
        return
    if old is None:  # a new branch: what it adds over the commit it starts from
        parents = store[new.encode()].parents
        old = parents[0].decode() if parents else None
    for change in _changed_files(store, old, new):
        if change["filename"].startswith(".github/workflows/"):
            raise HttpError(422, f"refusing to allow a GitHub App to create or update workflow "
                                 f"`{change['filename']}` without `workflows` permission")


@api.route("POST", "/repos/{owner}/{repo}/git/refs")
def create_ref(ctx: Ctx):
    repo = ctx.repo
    store = git.open_repo(repo.git_dir)
    name, sha = ctx.body["ref"], ctx.body["sha"]
    if not name.startswith("refs/") or name.count("/") < 2:
        raise HttpError(422, "Reference name must start with 'refs/' and have at least two slashes.")
    if name.encode() in store.refs:
        raise HttpError(422, "Reference already exists")
    _object(store, sha, Commit, status=422)
    _refuse_workflow_changes(ctx, store, None, sha)
    store.refs[name.encode()] = sha.encode()
    git.refs_moved(repo, store, [name])
    repo.pushed_at = now()
    return 201, _ref_json(ctx, repo.full_name, name, sha)


@api.route("PATCH", "/repos/{owner}/{repo}/git/refs/{ref}")
def update_ref(ctx: Ctx):
    repo = ctx.repo
    store = git.open_repo(repo.git_dir)
    name = "refs/" + ctx.params["ref"]
    if name.encode() not in store.refs:
        raise HttpError(422, "Reference does not exist")
    sha = ctx.body["sha"]
    _object(store, sha, Commit, status=422)
    current = store.refs[name.encode()].decode()
    if not ctx.body.get("force") and current not in git.ancestors(store, sha):
        raise HttpError(422, "Update is not a fast forward")
    _refuse_workflow_changes(ctx, store, current, sha)
    store.refs[name.encode()] = sha.encode()
    git.refs_moved(repo, store, [name])
    repo.pushed_at = now()
    return 200, _ref_json(ctx, repo.full_name, name, sha)


@api.route("DELETE", "/repos/{owner}/{repo}/git/refs/{ref}")
def delete_ref(ctx: Ctx):
    repo = ctx.repo
    store = git.open_repo(repo.git_dir)
    name = "refs/" + ctx.params["ref"]
    if name.encode() not in store.refs:
        raise HttpError(422, "Reference does not exist")
    del store.refs[name.encode()]
    git.refs_moved(repo, store, [name])
    return 204, None


# -- commits, branches, compare ----------------------------------------------------------------------
def commit_json(ctx: Ctx, full_name: str, store, sha: str) -> dict[str, Any]:
    """A commit as `GET /repos/{o}/{r}/commits/{ref}` answers it."""
    git_commit = _git_commit(ctx, full_name, store, sha)
    base = f"{ctx.render.base}/repos/{full_name}"
    inner = {k: git_commit[k] for k in ("author", "committer", "message", "tree", "url", "verification")}
    inner["comment_count"] = 0
    return {
        "sha": sha, "node_id": git_commit["node_id"], "url": f"{base}/commits/{sha}",
        "html_url": git_commit["html_url"], "comments_url": f"{base}/commits/{sha}/comments", "commit": inner,
        "author": None, "committer": None,
        "parents": [{"sha": p["sha"], "url": f"{base}/commits/{p['sha']}", "html_url": p["html_url"]}
                    for p in git_commit["parents"]],
    }


@api.route("GET", "/repos/{owner}/{repo}/commits/{ref}")
def get_commit(ctx: Ctx):
    repo = ctx.repo
    store = git.open_repo(repo.git_dir)
    sha = git.resolve_ref(store, ctx.params["ref"])
    if sha is None:
        raise HttpError(422, f"No commit found for SHA: {ctx.params['ref']}")
    data = commit_json(ctx, repo.full_name, store, sha)
    data["files"] = _changed_files(store, store[sha.encode()].parents[0].decode() if store[sha.encode()].parents else None, sha)
    data["stats"] = {"total": len(data["files"]), "additions": 0, "deletions": 0}
    return 200, data


@api.route("GET", "/repos/{owner}/{repo}/branches/{branch}")
def get_branch(ctx: Ctx):
    repo = ctx.repo
    store = git.open_repo(repo.git_dir)
    name = f"refs/heads/{ctx.params['branch']}".encode()
    if name not in store.refs:
        raise HttpError(404, "Branch not found")
    sha = store.refs[name].decode()
    base = f"{ctx.render.base}/repos/{repo.full_name}"
    return 200, {
        "name": ctx.params["branch"], "commit": commit_json(ctx, repo.full_name, store, sha),
        "_links": {"self": f"{base}/branches/{ctx.params['branch']}",
                   "html": f"{ctx.render.base}/{repo.full_name}/tree/{ctx.params['branch']}"},
        "protected": False, "protection": {"enabled": False},
        "protection_url": f"{base}/branches/{ctx.params['branch']}/protection",
    }


def _changed_files(store, old: str | None, new: str) -> list[dict[str, Any]]:
    from dulwich.diff_tree import tree_changes

    old_tree = store[old.encode()].tree if old else None
    files = []
    for change in tree_changes(store.object_store, old_tree, store[new.encode()].tree):
        # dulwich leaves the missing side None (or all-None) for an added or deleted file
        side = change.new if change.new is not None and change.new.path else change.old
        path = side.path.decode()
        status = {"add": "added", "delete": "removed", "modify": "modified"}.get(change.type, "modified")
        sha = side.sha.decode()
        files.append({"sha": sha, "filename": path, "status": status, "additions": 0, "deletions": 0,
                      "changes": 0, "blob_url": "", "raw_url": "", "contents_url": ""})
    return files


@api.route("GET", "/repos/{owner}/{repo}/compare/{basehead}")
def compare(ctx: Ctx):
    repo = ctx.repo
    store = git.open_repo(repo.git_dir)
    base_name, sep, head_name = ctx.params["basehead"].partition("...")
    if not sep:
        raise not_found()
    base_sha, head_sha = git.resolve_ref(store, base_name), git.resolve_ref(store, head_name)
    if base_sha is None or head_sha is None:
        raise not_found()
    head_line, base_line = git.ancestors(store, head_sha), git.ancestors(store, base_sha)
    base_set, head_set = set(base_line), set(head_line)
    merge_base = next((sha for sha in head_line if sha in base_set), base_sha)
    ahead = [sha for sha in head_line if sha not in base_set]
    behind = [sha for sha in base_line if sha not in head_set]
    status = "identical" if not ahead and not behind else "ahead" if not behind else "behind" if not ahead else "diverged"
    page = f"{ctx.render.base}/{repo.full_name}/compare/{ctx.params['basehead']}"
    return 200, {
        "url": f"{ctx.render.base}/repos/{repo.full_name}/compare/{ctx.params['basehead']}", "html_url": page,
        "permalink_url": page, "diff_url": page + ".diff", "patch_url": page + ".patch",
        "base_commit": commit_json(ctx, repo.full_name, store, base_sha),
        "merge_base_commit": commit_json(ctx, repo.full_name, store, merge_base),
        "status": status, "ahead_by": len(ahead), "behind_by": len(behind), "total_commits": len(ahead),
        "commits": [commit_json(ctx, repo.full_name, store, sha) for sha in reversed(ahead)],
        "files": _changed_files(store, merge_base, head_sha),
    }
