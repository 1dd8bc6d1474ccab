"""(pure) The order queued runs start in: round-robin across installations by how much each is running.

A run's place is its installation's running runs + its rank among that installation's queued runs: an
installation with 500 runs queued and 4 running puts its next one at 5, while another installation's
single run comes in at 1, so it takes the next free slot. Between equal places the installation that
had a run started longest ago goes first (then the older run), which makes one slot take turns. Within
one installation runs keep the order they were queued in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class QueuedRun:
    run_id: int
    installation_id: int


def fair_order(queued: Iterable[QueuedRun], running: Mapping[int, int],
               last_started: Mapping[int, datetime] | None = None) -> list[QueuedRun]:
    """`queued` in the order the dispatcher would start them if nothing else arrived or ended.

    `last_started`: when each installation last had a run started (absent: never)."""
    last_started = last_started or {}
    rank: dict[int, int] = {}
    keyed = []
    for run in sorted(queued, key=lambda r: r.run_id):
        installation = run.installation_id
        rank[installation] = rank.get(installation, 0) + 1
        place = running.get(installation, 0) + rank[installation]
        keyed.append(((place, _seconds(last_started.get(installation)), run.run_id), run))
    keyed.sort(key=lambda pair: pair[0])
    return [run for _, run in keyed]


def _seconds(moment: datetime | None) -> float:
    if moment is None:
        return float("-inf")  # never served: first among equals
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()  # stored naive UTC


def next_run(queued: Iterable[QueuedRun], running: Mapping[int, int], limit: int | None,
             last_started: Mapping[int, datetime] | None = None) -> QueuedRun | None:
    """The run a free slot should start: the first in fair order whose installation is under `limit`
    running runs (None: no limit). None when every queued run's installation is at its limit."""
    for run in fair_order(queued, running, last_started):
        if limit is None or running.get(run.installation_id, 0) < limit:
            return run
    return None


def runs_ahead(run_id: int, queued: Iterable[QueuedRun], running: Mapping[int, int],
               last_started: Mapping[int, datetime] | None = None) -> int | None:
    """How many queued runs start before `run_id` as things stand; None when it is not queued."""
    for place, run in enumerate(fair_order(queued, running, last_started)):
        if run.run_id == run_id:
            return place
    return None
