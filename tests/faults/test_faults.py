"""The fault bench's scenarios (bench/faults.py) at a fifth of its size: no trigger lost, doubled or stuck."""

from __future__ import annotations

import pytest

from bench import faults

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("scenario", list(faults.SCENARIOS))
def test_every_trigger_ends_once_in_a_state_github_shows(scenario, tmp_path):
    # Given serve on a fresh fake GitHub, when ten triggers arrive while `scenario`'s fault strikes
    outcome = faults.run_scenario(scenario, faults.SMALL, tmp_path)

    # Then each has exactly one task, and every task ended where a person can see it
    assert (outcome.lost, outcome.duplicated, outcome.stuck) == ([], [], []), "\n".join(outcome.notes)
    assert outcome.triggers == outcome.expected == faults.SMALL.triggers
    assert outcome.done + outcome.failed == outcome.expected
