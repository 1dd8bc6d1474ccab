import itertools

import pytest

from app.tasks.states import ACTIVE, TERMINAL, IllegalTransition, Status, transition


@pytest.mark.parametrize("current,target", list(itertools.product(Status, Status)))
def test_every_move_is_either_allowed_or_refused_by_the_rules(current, target):
    legal = (
        (current is Status.QUEUED and target in {Status.RUNNING, Status.CANCELLED, Status.FAILED})
        or (current is Status.RUNNING and (target in TERMINAL or target is Status.QUEUED))
        or (current in TERMINAL and target is Status.QUEUED)
    )
    if legal:
        assert transition(current, target) is target
    else:
        with pytest.raises(IllegalTransition):
            transition(current, target)


def test_a_finished_task_never_goes_straight_back_to_running():
    for status in TERMINAL:
        with pytest.raises(IllegalTransition, match="cannot move"):
            transition(status, Status.RUNNING)


def test_active_and_terminal_states_cover_everything_once():
    assert ACTIVE | TERMINAL == set(Status)
    assert not ACTIVE & TERMINAL
