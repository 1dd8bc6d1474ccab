"""The database schema: every table Draftsmith keeps (migrations in migrations/ mirror it)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, Text, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Delivery(SQLModel, table=True):
    """One verified webhook delivery, recorded before we answer GitHub."""

    __tablename__ = "deliveries"

    id: str = Field(primary_key=True, max_length=64)  # X-GitHub-Delivery
    # event and installation_id are not indexed: no query looks deliveries up by them, and every
    # index is one more B-tree write while a webhook waits for its answer.
    event: str = Field(max_length=64)
    action: str | None = Field(default=None, max_length=64)
    installation_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    received_at: datetime = Field(default_factory=utcnow, index=True)
    # received -> processed | ignored | failed
    status: str = Field(default="received", max_length=16, index=True)
    error: str | None = Field(default=None, sa_column=Column(Text))
    attempts: int = 0  # processing runs that reached an outcome (one a crash cut short is not counted)
    enqueued_at: datetime | None = None
    processed_at: datetime | None = None
    # Its body's DeliveryPayload.id. No foreign key: the recorder's own sqlite3 connection would not
    # check it, and nothing ever deletes one without the other.
    payload_id: int | None = Field(default=None, sa_column=Column(BigInteger))


class DeliveryPayload(SQLModel, table=True):
    """A delivery's body, as GitHub sent it (LZ4-compressed: app.deliveries.records), apart from the delivery's own row.

    Workers update a delivery's row when they store its outcome. With the body (13 KB typically) in
    that row, SQLite rewrote all of it, overflow pages and all, under the write lock the web
    processes commit under: ~0.9 ms to finish ten deliveries instead of ~0.08 ms (bench/README.md).
    Written once, with the delivery, and never updated.

    Numbered in arrival order rather than keyed by the delivery's id: delivery ids are random, so a
    primary key on them put every new body on a random index page, a whole page written to the WAL
    for each delivery. Numbered, each body goes at the end of the table's own B-tree (on SQLite an
    INTEGER PRIMARY KEY is the rowid, no separate index at all): 31% fewer WAL bytes per delivery,
    ~10% less SQLite time (bench/README.md).
    """

    __tablename__ = "delivery_payloads"

    id: int | None = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True))
    payload_lz4: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # app.deliveries.records.pack(body)


class DeliveryRecovery(SQLModel, table=True):
    """How far back GitHub's list of the App's deliveries was last checked for lost ones (one row), and totals.

    app.deliveries.recovery writes it; /metrics reads the totals, so every process reports the numbers
    the one sweeping process made.
    """

    __tablename__ = "delivery_recovery"

    id: int = Field(default=1, primary_key=True)
    # The newest GitHub delivery attempt id (GET /app/hook/deliveries "id") checked; None before the first sweep.
    checkpoint: int | None = Field(default=None, sa_column=Column(BigInteger))
    checked_at: datetime | None = None
    redeliveries: int = 0  # redeliveries asked of GitHub
    failed_again: int = 0  # deliveries whose redelivery failed too (left for a person: one redelivery each)
    rate_limited: int = 0  # sweeps GitHub's rate limit stopped


class Installation(SQLModel, table=True):
    __tablename__ = "installations"

    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    account_login: str | None = Field(default=None, max_length=255)
    account_type: str | None = Field(default=None, max_length=32)
    suspended: bool = False
    deleted: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Repository(SQLModel, table=True):
    __tablename__ = "repositories"

    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    installation_id: int = Field(sa_column=Column(BigInteger, index=True, nullable=False))
    full_name: str = Field(max_length=255, index=True)
    private: bool = False
    removed: bool = False
    updated_at: datetime = Field(default_factory=utcnow)


class Task(SQLModel, table=True):
    """A piece of work asked of the bot on one issue or pull request; runs are its attempts."""

    __tablename__ = "tasks"
    # Intake counts an installation's tasks today on every trigger (the daily limit).
    __table_args__ = (Index("ix_tasks_installation_created", "installation_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    installation_id: int = Field(sa_column=Column(BigInteger, index=True, nullable=False))
    repo_full_name: str = Field(max_length=255, index=True)
    issue_number: int = Field(index=True)
    is_pull_request: bool = False
    title: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    requester: str = Field(max_length=255)
    # assignment | mention | command | label | review | check_run | retry
    trigger: str = Field(max_length=32)
    trigger_comment_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    delivery_id: str | None = Field(default=None, max_length=64, index=True)
    instruction: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    mode: str = Field(default="run", max_length=16)  # run | plan
    agent: str = Field(default="", max_length=64)
    model: str | None = Field(default=None, max_length=128)
    runner: str = Field(default="sandbox", max_length=16)  # sandbox | actions
    base_branch: str | None = Field(default=None, max_length=255)
    branch: str | None = Field(default=None, max_length=255)
    base_sha: str | None = Field(default=None, max_length=64)
    head_sha: str | None = Field(default=None, max_length=64)
    pr_number: int | None = None
    status: str = Field(default="queued", max_length=32, index=True)
    status_reason: str | None = Field(default=None, sa_column=Column(Text))
    progress_comment_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    check_run_id: int | None = Field(default=None, sa_column=Column(BigInteger, index=True))
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class Run(SQLModel, table=True):
    """One attempt at a task."""

    __tablename__ = "runs"

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="tasks.id", index=True)
    attempt: int = 1
    status: str = Field(default="queued", max_length=32, index=True)
    # app.tasks.states.Stage the run last reached; None on runs from before it was kept.
    stage: str | None = Field(default="queued", max_length=32)
    worker: str | None = Field(default=None, max_length=255)
    queued_at: datetime = Field(default_factory=utcnow, index=True)  # the daily cost budget sums today's runs
    # A queued run its intake is still setting up (comment, draft PR): no run slot takes it until released.
    held: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    started_at: datetime | None = None
    heartbeat_at: datetime | None = Field(default=None, index=True)
    ended_at: datetime | None = None
    # When its end was written back to GitHub (app.engines.lifecycle); None while a worker that died
    # between the two left it unsaid, for the sweeper to say again.
    reported_at: datetime | None = None
    exit_code: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))
    cancel_requested: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    agent_seconds: float | None = None
    tests_passed: bool | None = None
    actions_run_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    actions_run_url: str | None = Field(default=None, max_length=512)
    # When an Actions runner first called back: until then the run waits for a runner (start-up deadline).
    runner_seen_at: datetime | None = None


class RunTurn(SQLModel, table=True):
    """When each installation last had a run started: between installations equally placed in the queue,
    the one served longest ago goes first (app.tasks.fair_queue)."""

    __tablename__ = "run_turns"

    installation_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    last_started_at: datetime = Field(default_factory=utcnow)


class LogLine(SQLModel, table=True):
    __tablename__ = "log_lines"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_log_lines_run_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    seq: int
    stream: str = Field(default="stdout", max_length=16)  # stdout | stderr | system
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Artifact(SQLModel, table=True):
    __tablename__ = "artifacts"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    kind: str = Field(max_length=32)  # diff | patch | plan | test_report | transcript
    content: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Credential(SQLModel, table=True):
    """A provider API key, AES-256-GCM encrypted; `repository` is None for installation-wide keys."""

    __tablename__ = "credentials"
    __table_args__ = (
        UniqueConstraint("installation_id", "repository", "name", name="uq_credentials_scope_name"),
    )

    id: int | None = Field(default=None, primary_key=True)
    installation_id: int = Field(sa_column=Column(BigInteger, index=True, nullable=False))
    repository: str | None = Field(default=None, max_length=255)
    name: str = Field(max_length=128)
    key_id: str = Field(max_length=64)
    nonce: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    last4: str = Field(max_length=8)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class CallbackToken(SQLModel, table=True):
    """A single-use, expiring credential an Actions run uses to report back; only its hash is kept."""

    __tablename__ = "callback_tokens"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    token_hash: str = Field(max_length=128, unique=True)
    expires_at: datetime
    used_at: datetime | None = None


class AuditEntry(SQLModel, table=True):
    """A state change a person caused: who, what, when and from where (never a secret's value)."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=255)  # a GitHub login, or `cli:<os user>` for the server's shell
    action: str = Field(max_length=64)  # task.triggered, task.cancelled, task.retried, credential.set, ...
    repo_full_name: str | None = Field(default=None, max_length=255, index=True)
    installation_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    subject: str = Field(default="", max_length=255)  # "task 12", "ANTHROPIC_API_KEY"
    source: str = Field(default="", max_length=255)  # "comment on #5", "check run button", "cli"
    details: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))



class SetupState(SQLModel, table=True):
    """A /setup attempt, found again by the `state` GitHub hands back: used once, expires (only its hash is kept).

    In the database, not in one process's memory, so any web process can take the callback.
    """

    __tablename__ = "setup_states"

    state_hash: str = Field(primary_key=True, max_length=64)
    web_url: str = Field(max_length=255)  # the GitHub the manifest went to, e.g. https://github.com
    api_url: str = Field(max_length=255)  # where its code is exchanged (GITHUB_API_URL of that GitHub)
    relay_url: str | None = Field(default=None, max_length=2048)  # a relay channel made the webhook URL
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None
