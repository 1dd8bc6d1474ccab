"""Recovery from GitHub's side: find the deliveries GitHub could not hand over and ask it to send them again.

GitHub does not retry a failed delivery by itself; its docs suggest exactly this job
(https://docs.github.com/webhooks/using-webhooks/handling-failed-webhook-deliveries). The sweeper runs
`recover_deliveries` every DRAFTSMITH_RECOVERY_INTERVAL seconds and once shortly after start-up. The
first half of this module is pure (GitHub's listing and the log's answer in, a plan out); the I/O is
`recover_deliveries` at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.logs import get_logger

log = get_logger(component="recovery")

# Redeliveries asked per sweep; the rest wait for the next (GitHub also limits how fast we may ask).
MAX_REDELIVERIES = 50
# Pages of 100 listed per sweep at most. A gap older than that is given up on, and logged.
MAX_PAGES = 30
# With no checkpoint yet (a new install), how far back to look: a trigger hours old may no longer be wanted.
FIRST_LOOKBACK = timedelta(hours=1)
# GitHub redelivers only deliveries made in the past three days.
GITHUB_KEEPS = timedelta(days=3)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One item of `GET /app/hook/deliveries`: one attempt at handing over the event `guid`."""

    id: int
    guid: str
    delivered_at: datetime
    redelivery: bool
    status_code: int  # 0 when GitHub could not connect
    event: str = ""
    action: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300

    @classmethod
    def from_github(cls, item: dict[str, Any]) -> Attempt:
        return cls(
            id=int(item["id"]), guid=str(item["guid"]),
            delivered_at=datetime.fromisoformat(str(item["delivered_at"]).replace("Z", "+00:00")),
            redelivery=bool(item.get("redelivery")), status_code=int(item.get("status_code") or 0),
            event=str(item.get("event") or ""), action=item.get("action"),
        )


def fresh(page: list[Attempt], checkpoint: int | None, horizon: datetime) -> tuple[list[Attempt], bool]:
    """The attempts of one page (newest first) not yet checked, and whether listing can stop here: the page
    reached the checkpoint, or attempts older than `horizon`."""
    new = [a for a in page if (checkpoint is None or a.id > checkpoint) and a.delivered_at >= horizon]
    return new, len(new) < len(page)


@dataclass(frozen=True, slots=True)
class Lost:
    """An event GitHub failed to hand over on every attempt listed; `attempt_id` is the newest of them."""

    guid: str
    attempt_id: int
    event: str
    action: str | None
    redelivered: bool  # the newest failed attempt was itself a redelivery


def lost(attempts: list[Attempt]) -> list[Lost]:
    """Events none of whose attempts succeeded, oldest (by newest attempt) first."""
    by_guid: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        by_guid.setdefault(attempt.guid, []).append(attempt)
    found = []
    for guid, tries in by_guid.items():
        if any(t.ok for t in tries):
            continue
        newest = max(tries, key=lambda t: t.id)
        found.append(Lost(guid, newest.id, newest.event, newest.action, newest.redelivery))
    return sorted(found, key=lambda item: item.attempt_id)


@dataclass(frozen=True)
class Plan:
    """What one sweep asks of GitHub, and where the next sweep stops listing once it is done."""

    redeliver: list[Lost]
    failed_again: list[Lost]
    held: int  # failed on GitHub's side, yet in the log (GitHub gave up waiting for our answer): the sweeper's job
    deferred: int  # over the limit, left for the next sweep
    checkpoint: int | None


def plan(attempts: list[Attempt], held: set[str], *, checkpoint: int | None, limit: int = MAX_REDELIVERIES) -> Plan:
    """Redeliver each lost event the log does not hold, once: an event whose redelivery failed again is
    counted, not redelivered again (a receiver that refuses it would refuse it every interval for three
    days), so a person can look at it. Over `limit`, the rest wait: the checkpoint stays below them.

    `attempts` are all those listed since `checkpoint`; `held` the guids among them the log holds.
    """
    redeliver: list[Lost] = []
    failed_again: list[Lost] = []
    count_held = deferred = 0
    stop_below: int | None = None
    for item in lost(attempts):
        if item.guid in held:
            count_held += 1
        elif stop_below is not None:
            deferred += 1
        elif item.redelivered:
            failed_again.append(item)
        elif len(redeliver) == limit:
            stop_below, deferred = item.attempt_id, 1
        else:
            redeliver.append(item)
    if stop_below is not None:
        new_checkpoint: int | None = stop_below - 1
    else:
        new_checkpoint = max((a.id for a in attempts), default=checkpoint)
    return Plan(redeliver, failed_again, count_held, deferred, new_checkpoint)


@dataclass(frozen=True)
class Outcome:
    """What a sweep did: where the next one stops listing, and what it counts."""

    checkpoint: int | None
    redelivered: list[Lost] = field(default_factory=list)
    failed_again: list[Lost] = field(default_factory=list)
    rate_limited: bool = False


def settle(planned: Plan, done: int, *, rate_limited: bool = False) -> Outcome:
    """The outcome once the first `done` redeliveries were asked for (all, unless GitHub stopped us).

    Stopped early, the checkpoint stays below the first redelivery not asked for, so the next sweep
    sees it again; events counted as failed again above that are counted then, not now (once each).
    """
    if done >= len(planned.redeliver):
        return Outcome(planned.checkpoint, list(planned.redeliver), list(planned.failed_again), rate_limited)
    checkpoint = planned.redeliver[done].attempt_id - 1
    failed_again = [item for item in planned.failed_again if item.attempt_id <= checkpoint]
    return Outcome(checkpoint, list(planned.redeliver[:done]), failed_again, rate_limited)


# -- I/O -----------------------------------------------------------------------------------------------


def recover_deliveries(runtime, *, limit: int = MAX_REDELIVERIES, max_pages: int = MAX_PAGES,
                       per_page: int | None = None) -> Outcome | None:
    """List the App's deliveries back to the last checkpoint and redeliver the lost ones; None without an App.

    Stops at GitHub's rate limit (403/429) and tries again next interval: a listing cut short changes
    nothing, redeliveries cut short leave the checkpoint below the first not asked for.
    """
    from githubkit.exception import RateLimitExceeded, RequestFailed

    from app.deliveries.stores import sql
    from app.github import hook_deliveries
    from app.models import utcnow

    if runtime.github is None:
        return None
    gh = hook_deliveries.client(runtime.github)
    checkpoint = _load_checkpoint(runtime.engine)
    now = utcnow()
    horizon = now - (FIRST_LOOKBACK if checkpoint is None else GITHUB_KEEPS)
    attempts: list[Attempt] = []
    cursor: str | None = None
    try:
        for _ in range(max_pages):
            items, cursor = hook_deliveries.list_page(gh, cursor, per_page or hook_deliveries.PER_PAGE)
            page, reached = fresh([Attempt.from_github(item) for item in items], checkpoint, horizon)
            attempts += page
            if reached or cursor is None:
                break
        else:
            log.warning("recovery_listing_cut_short", pages=max_pages,
                        oldest_listed=attempts[-1].id if attempts else None)
    except RateLimitExceeded as exc:
        _save(runtime.engine, Outcome(checkpoint, rate_limited=True), now)
        log.warning("recovery_rate_limited", step="list", retry_after=exc.retry_after.total_seconds())
        return Outcome(checkpoint, rate_limited=True)

    held = sql.held(runtime.engine, [a.guid for a in attempts if not a.ok])
    planned = plan(attempts, held, checkpoint=checkpoint, limit=limit)
    done, rate_limited = 0, False
    for item in planned.redeliver:
        try:
            hook_deliveries.redeliver(gh, item.attempt_id)
        except RateLimitExceeded as exc:
            rate_limited = True
            log.warning("recovery_rate_limited", step="redeliver", retry_after=exc.retry_after.total_seconds())
            break
        except RequestFailed as exc:  # e.g. 422 for a delivery GitHub no longer keeps: nothing to retry
            log.warning("redelivery_refused", delivery_id=item.guid, status=exc.response.status_code)
        else:
            log.info("redelivery_requested", delivery_id=item.guid, gh_event=item.event, action=item.action)
        done += 1
    outcome = settle(planned, done, rate_limited=rate_limited)
    for item in outcome.failed_again:
        log.warning("redelivery_failed_again", delivery_id=item.guid, gh_event=item.event, action=item.action,
                    attempt_id=item.attempt_id)
    _save(runtime.engine, outcome, now)
    if outcome.redelivered or outcome.failed_again or planned.deferred:
        log.info("recovered_deliveries", listed=len(attempts), redelivered=len(outcome.redelivered),
                 failed_again=len(outcome.failed_again), held=planned.held, deferred=planned.deferred)
    return outcome


def _load_checkpoint(engine) -> int | None:
    from sqlmodel import Session

    from app.models import DeliveryRecovery

    with Session(engine) as session:
        row = session.get(DeliveryRecovery, 1)
        return row.checkpoint if row else None


def _save(engine, outcome: Outcome, checked_at: datetime) -> None:
    from sqlmodel import Session

    from app.models import DeliveryRecovery

    with Session(engine) as session:
        row = session.get(DeliveryRecovery, 1) or DeliveryRecovery(id=1)
        row.checkpoint = outcome.checkpoint
        row.checked_at = checked_at
        row.redeliveries += len(outcome.redelivered)
        row.failed_again += len(outcome.failed_again)
        row.rate_limited += int(outcome.rate_limited)
        session.add(row)
        session.commit()


def totals(engine) -> dict[str, float] | None:
    """The running totals /metrics shows, and when the last sweep ran (None before any)."""
    from sqlmodel import Session

    from app.models import DeliveryRecovery

    with Session(engine) as session:
        row = session.get(DeliveryRecovery, 1)
    if row is None:
        return None
    return {"redeliveries": row.redeliveries, "failed_again": row.failed_again, "rate_limited": row.rate_limited,
            "checked_at": row.checked_at.timestamp() if row.checked_at else 0.0}
