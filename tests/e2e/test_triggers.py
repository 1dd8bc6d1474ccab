"""Every way people ask Draftsmith for work, and every way it says no: webhook in, GitHub state out."""

from __future__ import annotations

from app.github import render
from tests.e2e.conftest import REPO, command_config

EDIT = command_config("echo more >> README.md && echo edited")


def test_a_mention_starts_a_task_with_the_instruction(scene, fakehub):
    scene.repo(EDIT)
    number = fakehub.open_issue(REPO, "Docs", "Please improve the docs.")
    comment_id = fakehub.comment(REPO, number, f"@{fakehub.app_slug} add a line to the README please")
    [task] = scene.wait_settled()
    assert (task.trigger, task.instruction, task.requester) == ("mention", "add a line to the README please", "alice")
    assert task.status == "succeeded"
    assert [r.content for r in fakehub.state.comments[comment_id].reactions] == ["eyes"]


def test_a_slash_command_with_flags_starts_a_task(scene, fakehub):
    scene.repo(EDIT)
    number = fakehub.open_issue(REPO, "Docs", "")
    fakehub.comment(REPO, number, "/agent run --model gpt-x add a line")
    [task] = scene.wait_settled()
    assert (task.trigger, task.model, task.instruction) == ("command", "gpt-x", "add a line")
    assert task.status == "succeeded"


def test_the_configured_label_starts_a_task_and_other_labels_do_nothing(scene, fakehub):
    scene.repo(EDIT + "trigger_label: agent\n")
    number = fakehub.open_issue(REPO, "Docs", "")
    fakehub.label(REPO, number, "bug")
    scene.wait_settled()
    assert scene.tasks() == []
    fakehub.label(REPO, number, "agent")
    [task] = scene.wait_settled()
    assert task.trigger == "label" and task.status == "succeeded"


def test_acknowledgement_is_visible_before_the_run_starts(scene, fakehub, draftsmith):
    scene.repo(EDIT)
    number = fakehub.open_issue(REPO, "Docs", "")
    draftsmith.hold_runs()
    fakehub.assign(REPO, number, scene.bot)
    draftsmith.join_deliveries()
    [task] = scene.tasks()
    assert task.status == "queued"
    issue = fakehub.repo(REPO).issues[number]
    assert [r.content for r in issue.reactions] == ["eyes"]
    [progress] = scene.bot_comments(number)
    assert render.progress_marker(task.id) in progress.body and "Queued" in progress.body
    # and the draft PR with a queued check run on its head, not on main's
    [pr] = scene.pulls()
    assert pr.pull.draft is True and "Queued" in pr.body
    check = scene.check_run()
    assert (check.name, check.status) == ("Draftsmith", "queued")
    assert check.head_sha == scene.branch_head(pr.pull.head_ref)
    draftsmith.release_runs()
    [task] = scene.wait_settled()
    assert task.status == "succeeded"


def test_a_read_only_commenter_gets_one_polite_refusal(scene, fakehub):
    scene.repo(EDIT)
    number = fakehub.open_issue(REPO, "Docs", "")
    fakehub.comment(REPO, number, "/agent run do it", as_user="rita")
    scene.wait_settled()
    assert scene.tasks() == []
    [reply] = scene.bot_comments(number)
    assert reply.body == render.permission_refusal("rita", "write")


def test_commands_in_code_quotes_and_edits_do_nothing(scene, fakehub):
    scene.repo(EDIT)
    number = fakehub.open_issue(REPO, "Docs", "")
    fakehub.comment(REPO, number, "Try this:\n```\n/agent run oops\n```\n> /agent run quoted\nand `/agent run inline`")
    comment_id = fakehub.comment(REPO, number, "nothing yet")
    fakehub.edit_comment(REPO, comment_id, "/agent run now edited in")
    scene.wait_settled()
    assert scene.tasks() == [] and scene.bot_comments(number) == []


def test_a_bot_comment_never_triggers_anything(scene, fakehub):
    scene.repo(EDIT)
    fakehub.add_user("dependabot[bot]", type="Bot", permissions={REPO: "write"})
    number = fakehub.open_issue(REPO, "Docs", "")
    fakehub.comment(REPO, number, "/agent run bump things", as_user="dependabot[bot]")
    scene.wait_settled()
    assert scene.tasks() == [] and scene.bot_comments(number) == []


def test_an_allowed_bot_may_trigger_a_task(scene, fakehub):
    scene.repo(EDIT + "allowed_bots: [renovate]\n")
    fakehub.add_user("renovate[bot]", type="Bot", permissions={REPO: "write"})
    number = fakehub.open_issue(REPO, "Docs", "")
    fakehub.comment(REPO, number, "/agent run bump things", as_user="renovate[bot]")
    [task] = scene.wait_settled()
    assert task.requester == "renovate[bot]"


def test_a_malformed_command_gets_a_helpful_reply_and_nothing_else(scene, fakehub):
    scene.repo(EDIT)
    number = fakehub.open_issue(REPO, "Docs", "")
    fakehub.comment(REPO, number, "/agent rnu fix it")
    scene.wait_settled()
    assert scene.tasks() == []
    [reply] = scene.bot_comments(number)
    assert "run" in reply.body and "/agent help" in reply.body


def test_help_lists_verbs_agents_and_the_effective_config(scene, fakehub):
    scene.repo(EDIT)
    number = fakehub.open_issue(REPO, "Docs", "")
    fakehub.comment(REPO, number, "/agent help")
    scene.wait_settled()
    [reply] = scene.bot_comments(number)
    for word in ("run", "plan", "cancel", "retry", "status", "mini-swe-agent", "claude-code", "command"):
        assert word in reply.body
    assert "max_runtime_minutes" in reply.body


def test_a_second_trigger_while_busy_gets_a_reply_with_the_running_task(scene, fakehub, draftsmith):
    scene.repo(EDIT)
    number = fakehub.open_issue(REPO, "Docs", "")
    draftsmith.hold_runs()  # keep the first task queued
    fakehub.comment(REPO, number, "/agent run first")
    draftsmith.join_deliveries()
    fakehub.comment(REPO, number, "/agent run second")
    draftsmith.join_deliveries()
    [task] = scene.tasks()
    replies = [c for c in scene.bot_comments(number) if render.progress_marker(task.id) not in c.body]
    assert len(replies) == 1 and "/agent cancel" in replies[0].body
    draftsmith.release_runs()
    scene.wait_settled()


def test_busy_with_on_busy_queue_runs_the_next_instruction_afterwards(scene, fakehub, draftsmith):
    scene.repo(EDIT + "on_busy: queue\n")
    number = fakehub.open_issue(REPO, "Docs", "")
    draftsmith.hold_runs()
    fakehub.comment(REPO, number, "/agent run first")
    draftsmith.join_deliveries()
    fakehub.comment(REPO, number, "/agent run second")
    draftsmith.join_deliveries()
    draftsmith.release_runs()
    first, second = scene.wait_settled()
    assert (first.instruction, second.instruction) == ("first", "second")
    assert first.status == "succeeded" and second.status == "succeeded"


def test_unassigning_the_bot_cancels_its_queued_task(scene, fakehub, draftsmith):
    scene.repo(EDIT)
    number = fakehub.open_issue(REPO, "Docs", "")
    draftsmith.hold_runs()
    fakehub.assign(REPO, number, scene.bot)
    draftsmith.join_deliveries()
    fakehub.unassign(REPO, number, scene.bot)
    draftsmith.join_deliveries()
    [task] = scene.tasks()
    assert task.status == "cancelled" and "unassigned by @alice" in task.status_reason
    check = scene.check_run()
    assert (check.status, check.conclusion) == ("completed", "cancelled")
    assert "Cancelled" in scene.bot_comments(number)[0].body


def test_an_invalid_config_file_is_named_by_line_and_defaults_apply(scene, fakehub):
    scene.repo(EDIT + "max_runtime_minutes: soon\n")
    number = fakehub.open_issue(REPO, "Docs", "")
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled()
    assert task.status == "succeeded"
    [warning] = [c for c in scene.bot_comments(number) if "problems" in c.body]
    assert "line 3" in warning.body and "max_runtime_minutes" in warning.body



def test_a_repository_added_to_the_installation_after_a_token_was_cached_is_served(scene, fakehub):
    # Given a task on one repository, so the app holds a cached installation token
    scene.repo(EDIT)
    first = fakehub.open_issue(REPO, "Docs", "")
    fakehub.assign(REPO, first, scene.bot)
    [task] = scene.wait_settled()
    assert task.status == "succeeded"

    # When a second repository joins the same installation and someone assigns the bot there
    other = scene.repo(EDIT, name="octo/later")
    number = fakehub.open_issue(other, "Docs", "")
    fakehub.assign(other, number, scene.bot)
    tasks = scene.wait_settled()

    # Then it is served as any other: the stale token is replaced, not taken for "no such repository"
    later = next(t for t in tasks if t.repo_full_name == other)
    assert later.status == "succeeded", later.status_reason
    assert [r.content for r in fakehub.repo(other).issues[number].reactions] == ["eyes"]
    assert len(scene.pulls(other)) == 1
