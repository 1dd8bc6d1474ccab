"""The fake GitHub's state: plain Python objects a test can read directly."""

from __future__ import annotations

import itertools
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

# GitHub's repository roles, weakest first; `permission` in the REST answer folds them into admin/write/read.
ROLES = ("read", "triage", "write", "maintain", "admin")


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


@dataclass
class User:
    id: int
    login: str
    type: str = "User"  # "User" | "Bot" | "Organization"


@dataclass
class App:
    id: int
    slug: str
    name: str
    owner: User
    bot: User
    public_key_pem: bytes
    webhook_secret: str
    client_id: str
    created_at: datetime = field(default_factory=now)
    client_secret: str = field(default_factory=lambda: secrets.token_hex(20))  # for the OAuth web flow


@dataclass
class Installation:
    id: int
    account: User
    repos: set[str] = field(default_factory=set)  # "owner/name"
    created_at: datetime = field(default_factory=now)


@dataclass
class Token:
    token: str
    installation_id: int
    expires_at: datetime
    repos: set[str]  # "owner/name" the token may touch
    permissions: dict[str, str] = field(default_factory=dict)  # e.g. {"contents": "read", "metadata": "read"}
    revoked_at: datetime | None = None

    @property
    def live(self) -> bool:
        return self.revoked_at is None and self.expires_at > now()


@dataclass
class OAuthGrant:
    """A code the authorize page handed out (app.fakehub.oauth), good once for a user access token."""

    code: str
    user: User
    redirect_uri: str | None
    code_challenge: str | None
    expires_at: datetime


@dataclass
class UserToken:
    token: str  # ghu_...
    user: User
    expires_at: datetime
    refresh_token: str  # ghr_...

    @property
    def live(self) -> bool:
        return self.expires_at > now()


@dataclass
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None


@dataclass
class Reaction:
    id: int
    user: User
    content: str
    created_at: datetime = field(default_factory=now)


@dataclass
class Comment:
    id: int
    repo: str
    issue_number: int
    user: User
    body: str
    via_app: bool = False
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    reactions: list[Reaction] = field(default_factory=list)


@dataclass
class ReviewComment:
    id: int
    repo: str
    pull_number: int
    user: User
    body: str
    path: str
    commit_id: str
    line: int | None = None
    side: str = "RIGHT"
    in_reply_to_id: int | None = None
    review_id: int | None = None
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    reactions: list[Reaction] = field(default_factory=list)


@dataclass
class Review:
    id: int
    repo: str
    pull_number: int
    user: User
    body: str
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED
    commit_id: str
    submitted_at: datetime = field(default_factory=now)


@dataclass
class Issue:
    """An issue or, when `pull` is set, the issue half of a pull request (they share numbers, as on GitHub)."""

    id: int
    number: int
    repo: str
    title: str
    body: str | None
    user: User
    via_app: bool = False
    state: str = "open"
    state_reason: str | None = None
    labels: list[Label] = field(default_factory=list)
    assignees: list[User] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    closed_at: datetime | None = None
    pull: PullRequest | None = None


@dataclass
class PullRequest:
    id: int
    head_ref: str
    base_ref: str
    draft: bool = False
    head_repo: str | None = None  # a fork's full name when the branch lives there
    maintainer_can_modify: bool = True
    merged: bool = False
    requested_reviewers: list[User] = field(default_factory=list)
    node_id: str = ""


@dataclass
class CheckRun:
    id: int
    repo: str
    name: str
    head_sha: str
    status: str = "queued"
    conclusion: str | None = None
    details_url: str | None = None
    external_id: str | None = None
    output: dict[str, Any] = field(default_factory=dict)
    actions: list[dict[str, Any]] = field(default_factory=list)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    check_suite_id: int = 0
    app_slug: str | None = None  # another app's check run (e.g. "github-actions"); None: the App's


@dataclass
class CheckSuite:
    """Another app's suite on a commit (the App's own check runs each get an id, not a listed suite)."""

    id: int
    repo: str
    head_sha: str
    head_branch: str | None
    app_slug: str
    status: str = "completed"
    conclusion: str | None = None
    created_at: datetime = field(default_factory=now)


@dataclass
class Dispatch:
    repo: str
    event_type: str
    client_payload: dict[str, Any]
    actor: str
    received_at: datetime = field(default_factory=now)


@dataclass
class WorkflowRun:
    id: int
    repo: str
    run_number: int
    event: str
    display_title: str
    head_branch: str
    head_sha: str
    path: str = ".github/workflows/draftsmith.yml"
    workflow_id: int = 1
    status: str = "queued"
    conclusion: str | None = None
    client_payload: dict[str, Any] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)


@dataclass
class Repository:
    id: int
    owner: User
    name: str
    default_branch: str
    git_dir: str
    private: bool = False
    permissions: dict[str, str] = field(default_factory=dict)  # login -> role
    issues: dict[int, Issue] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)
    dispatches: list[Dispatch] = field(default_factory=list)
    created_at: datetime = field(default_factory=now)
    pushed_at: datetime = field(default_factory=now)
    fork_of: str | None = None
    # Branch name -> sha as the fake last read or wrote them (app.fakehub.git.branch_heads); None: not read
    # yet. Payloads take PR heads from it instead of opening the git directory once per open PR: with a
    # thousand open PRs that was a third of the fake's time in a burst. Kept up to date by the fake's own
    # ref writes (Git Data API, pushes over its git server); a test that moves a ref behind the fake's
    # back with the git CLI must reset it to None.
    heads: dict[str, str] | None = field(default=None, repr=False, compare=False)

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"

    @property
    def pulls(self) -> list[Issue]:
        """The repository's pull requests (as their issues), oldest first."""
        return [issue for issue in self.issues.values() if issue.pull is not None]


@dataclass
class Delivery:
    """One attempt at handing an event over; a redelivery is a new attempt with the same `id` (guid)."""

    id: str  # the X-GitHub-Delivery uuid, shared by every attempt at the same event
    event: str
    action: str | None
    payload: dict[str, Any]
    status_code: int | None  # what the webhook receiver answered; None when unreachable or no URL is set
    url: str | None
    error: str | None = None
    delivered_at: datetime = field(default_factory=now)
    attempt_id: int = 0  # GitHub's integer "id" of this attempt in GET /app/hook/deliveries (newer is larger)
    redelivery: bool = False
    duration: float = 0.0  # seconds the receiver took to answer

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class RequestRecord:
    method: str
    path: str
    query: str
    actor: str | None
    status: int
    body: Any
    token: str | None = None  # the installation token presented, so tests can follow where one went
    # time.monotonic() when the handler had answered, before its webhooks went out: benches time what
    # a call changed from the log instead of rescanning the fake's state (bench/e2e.py).
    at: float = field(default_factory=time.monotonic)


@dataclass
class Fault:
    method: str
    path: str  # may hold * wildcards
    status: int = 502
    count: int | None = 1  # None: every matching request until `until` (or until cleared)
    retry_after: int | None = None
    hang: float | None = None
    message: str | None = None
    every: int = 1  # 2: every other matching request (the 2nd, 4th, ...), as a flaky proxy would
    until: float | None = None  # time.monotonic() after which the fault is gone
    app_only: bool = False  # only the App's own calls (JWT or token), not people acting through the fake
    seen: int = 0  # matching requests so far, for `every`


class FakeHubState:
    """Everything the fake knows. Guard mutations with `lock`; webhooks are sent after releasing it."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        # Ids start at a random offset so clients that cache installation tokens by (app id, installation
        # id) across fakes (githubkit does, process-wide) never reuse a token another fake issued.
        self._ids = itertools.count(random.randrange(1, 90_000) * 1000 + 1)
        self.app: App | None = None
        self.users: dict[str, User] = {}
        self.installations: dict[int, Installation] = {}
        self.tokens: dict[str, Token] = {}
        self.oauth_grants: dict[str, OAuthGrant] = {}
        self.user_tokens: dict[str, UserToken] = {}
        self.repos: dict[str, Repository] = {}
        self.comments: dict[int, Comment] = {}
        self.review_comments: dict[int, ReviewComment] = {}
        self.reviews: dict[int, Review] = {}
        self.check_runs: dict[int, CheckRun] = {}
        self.check_suites: dict[int, CheckSuite] = {}
        self.job_logs: dict[int, str] = {}  # Actions job id -> its log text
        self.workflow_runs: dict[int, WorkflowRun] = {}
        self.deliveries: list[Delivery] = []
        self.requests: list[RequestRecord] = []
        self.faults: list[Fault] = []
        self.verified_commits: set[str] = set()  # commits the App made through the API (GitHub signs those)
        self.webhook_url: str | None = None

    def next_id(self) -> int:
        return next(self._ids)

    def user(self, login: str, type: str = "User") -> User:
        """The user called `login`, created on first mention."""
        with self.lock:
            if login not in self.users:
                self.users[login] = User(id=self.next_id(), login=login, type=type)
            return self.users[login]

    def repo(self, full_name: str) -> Repository:
        return self.repos[full_name]

    def installation_for(self, full_name: str) -> Installation | None:
        for installation in self.installations.values():
            if full_name in installation.repos:
                return installation
        return None

    def role(self, repo: Repository, login: str) -> str | None:
        if login == repo.owner.login:
            return "admin"
        return repo.permissions.get(login)
