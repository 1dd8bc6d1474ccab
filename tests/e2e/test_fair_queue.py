"""Runs are shared fairly across installations, a per-installation limit queues instead of refusing, and
acknowledgements never wait behind runs."""

from __future__ import annotations

from tests.e2e.conftest import REPO, command_config

OTHER = "beta/web"  # another account: its own installation of the App
SLOW_EDIT = command_config("sleep 0.4 && sed -i s/tpyo/typo/ README.md && echo fixed")


def started_order(scene) -> list[tuple[str, int]]:
    runs = [(scene.runs(task.id)[0], task) for task in scene.tasks()]
    return [(task.repo_full_name, task.issue_number)
            for run, task in sorted(runs, key=lambda pair: pair[0].started_at)]


def test_another_installations_task_takes_the_next_free_slot_ahead_of_a_backlog(make_scene, fakehub):
    scene = make_scene(run_threads=1)
    scene.repo(SLOW_EDIT)
    scene.repo(SLOW_EDIT, name=OTHER)
    fakehub.add_user("alice", permissions={REPO: "write", OTHER: "write"})
    scene.app.hold_runs()
    backlog = scene.assign_in_turn([f"Fix {i}" for i in range(4)])
    [theirs] = scene.assign_in_turn(["Fix theirs"], repo=OTHER)

    # The progress comments say where each stands: B's one task is second, behind only A's oldest.
    [last_progress] = scene.bot_comments(backlog[-1])
    assert "Queued, 3 ahead" in last_progress.body
    [progress] = scene.bot_comments(theirs, OTHER)
    assert "Queued, 1 ahead" in progress.body
    fakehub.comment(REPO, backlog[-1], "/agent status")  # and now the last of A's has B ahead of it too
    scene.app.join_deliveries()
    assert "Queued, 4 ahead" in scene.bot_comments(backlog[-1])[-1].body

    scene.app.release_runs()
    tasks = scene.wait_settled()
    assert {t.status for t in tasks} == {"succeeded"}
    assert started_order(scene) == [(REPO, backlog[0]), (OTHER, theirs)] + [(REPO, n) for n in backlog[1:]]


def test_over_the_concurrency_limit_tasks_wait_their_turn_instead_of_being_refused(make_scene, fakehub):
    scene = make_scene(max_concurrent_tasks=1)
    scene.repo(SLOW_EDIT)
    numbers = [fakehub.open_issue(REPO, f"Fix {i}", "") for i in range(3)]
    for number in numbers:
        fakehub.assign(REPO, number, scene.bot)

    tasks = scene.wait_settled()
    assert [t.status for t in tasks] == ["succeeded"] * 3
    assert len([p for p in scene.pulls() if not p.pull.draft]) == 3
    runs = sorted((scene.runs(t.id)[0] for t in tasks), key=lambda run: run.started_at)
    for earlier, later in zip(runs, runs[1:]):
        assert later.started_at >= earlier.ended_at, "one run at a time for this installation"
    for number in numbers:
        assert not any("limit" in c.body for c in scene.bot_comments(number))


def test_a_task_deep_in_the_queue_opens_its_draft_when_it_starts(make_scene, fakehub):
    scene = make_scene(run_threads=1)
    scene.repo(command_config("sed -i s/tpyo/typo/ README.md"))
    scene.app.hold_runs()
    numbers = scene.assign_in_turn([f"Fix {i}" for i in range(3)])

    # One run slot: the first task is next and has its draft; the others wait without one, and say so.
    assert [p.title for p in scene.pulls()] == ["Fix 0"]
    [waiting] = scene.bot_comments(numbers[2])
    assert "Queued, 2 ahead" in waiting.body and "draft pull request opens then" in waiting.body

    scene.app.release_runs()
    tasks = scene.wait_settled()
    assert [t.status for t in tasks] == ["succeeded"] * 3
    assert sorted(p.title for p in scene.pulls()) == ["Fix 0", "Fix 1", "Fix 2"]
    [progress] = scene.bot_comments(numbers[2])  # still the one comment, now saying it is done
    assert "ahead" not in progress.body


def test_an_assignment_is_acknowledged_while_runs_hold_every_run_slot(make_scene, fakehub):
    scene = make_scene(run_threads=2)  # as many runs at once as the app has threads for webhooks
    scene.repo(command_config("sleep 6 && sed -i s/tpyo/typo/ README.md"))
    busy = [fakehub.open_issue(REPO, f"Slow {i}", "") for i in range(2)]
    for number in busy:
        fakehub.assign(REPO, number, scene.bot)
    scene.wait_for(lambda: [t.status for t in scene.tasks()] == ["running"] * 2, what="both runs going")

    number = fakehub.open_issue(REPO, "Another", "")
    fakehub.assign(REPO, number, scene.bot)
    [progress] = scene.wait_for(lambda: scene.bot_comments(number), timeout=4, what="the progress comment")
    assert "Queued" in progress.body
    assert [r.content for r in fakehub.repo(REPO).issues[number].reactions] == ["eyes"]
    assert [t.status for t in scene.tasks()][:2] == ["running"] * 2  # acknowledged while both still ran
    assert {t.status for t in scene.wait_settled()} == {"succeeded"}
