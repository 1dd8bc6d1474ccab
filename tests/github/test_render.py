"""What Draftsmith writes on GitHub: the text users see in comments, check runs and pull requests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.commands.grammar import VERBS, CommandError, parse
from app.github import render
from app.github.repo_config import ConfigError, RepoConfig
from app.models import Run, Task
from app.policy import LimitExceeded

SLUG = "draftsmith"


def make_task(**overrides) -> Task:
    fields = {"id": 7, "installation_id": 1, "repo_full_name": "octo/demo", "issue_number": 3, "requester": "alice",
              "trigger": "command", "instruction": "Fix the typo in README", "agent": "codex", "status": "queued"}
    return Task(**{**fields, **overrides})


def make_run(**overrides) -> Run:
    return Run(**{"task_id": 7, **overrides})


def checklist_lines(body: str) -> list[str]:
    return [line for line in body.splitlines() if line.startswith("- [")]


def test_the_progress_comment_carries_a_marker_we_can_find_again():
    body = render.progress_comment(make_task(), make_run())
    assert render.progress_marker(7) in body
    assert body.startswith(render.MARKER_PREFIX)
    assert render.find_marker(body) == 7
    assert render.find_marker("no marker here") is None
    assert render.find_marker(render.pr_body(make_task(), make_run()), "pr") == 7


def test_a_queued_task_shows_queued_as_current_and_how_to_cancel():
    body = render.progress_comment(make_task(), make_run())
    assert checklist_lines(body) == [
        "- [ ] **Queued** ⏳",
        "- [ ] Setting up workspace",
        "- [ ] Agent working",
        "- [ ] Committing changes",
        "- [ ] Running tests",
        "- [ ] Pull request",
    ]
    assert "Draftsmith: ⏳ Queued" in body
    assert "`/agent cancel`" in body


@pytest.mark.parametrize(
    ("stage", "done", "current"),
    [
        ("workspace", 1, "Setting up workspace"),
        ("agent", 2, "Agent working"),
        ("commit", 3, "Committing changes"),
        ("tests", 4, "Running tests"),
        ("pull_request", 5, "Pull request"),
    ],
)
def test_the_current_stage_is_highlighted_and_earlier_ones_ticked(stage, done, current):
    body = render.progress_comment(make_task(status="running"), make_run(), stage, task_url="https://ds/tasks/7")
    lines = checklist_lines(body)
    assert all(line.startswith("- [x]") for line in lines[:done])
    assert lines[done] == f"- [ ] **{current}** ⏳"
    assert all(line.startswith("- [ ]") and "**" not in line for line in lines[done + 1 :])
    assert "[logs and details](https://ds/tasks/7)" in body


def test_success_links_the_pull_request_and_ticks_everything():
    task = make_task(status="succeeded", pr_number=12, branch="draftsmith/issue-3-fix", base_sha="a", head_sha="b")
    run = make_run(started_at=datetime(2024, 1, 1), agent_seconds=30.0, tests_passed=True)
    body = render.progress_comment(task, run, "pull_request")
    assert all(line.startswith("- [x]") for line in checklist_lines(body))
    assert "- [x] Pull request #12" in body
    assert "Opened pull request #12." in body
    assert "✅ Done" in body
    assert "`/agent run <instruction>`" in body
    assert "`/agent cancel`" not in body


def test_success_without_a_test_command_says_tests_were_skipped():
    task = make_task(status="succeeded", pr_number=12, branch="b", base_sha="a", head_sha="b")
    body = render.progress_comment(task, make_run(started_at=datetime(2024, 1, 1), agent_seconds=1.0))
    assert "- [x] ~~Running tests~~ (no test command)" in body


def test_success_without_changes_says_there_is_no_pull_request():
    task = make_task(status="succeeded")
    body = render.progress_comment(task, make_run(started_at=datetime(2024, 1, 1), agent_seconds=1.0), "done")
    assert "no changes to propose" in body
    assert "without changing any files" in body


@pytest.mark.parametrize(
    ("status", "headline", "icon"),
    [
        ("failed", "❌ Failed", "❌"),
        ("cancelled", "🚫 Cancelled", "🚫"),
        ("timed_out", "⏱️ Timed out", "⏱️"),
        ("needs_attention", "⚠️ Needs attention", "❌"),
    ],
)
def test_a_finished_task_states_the_reason_and_how_to_retry(status, headline, icon):
    task = make_task(status=status, status_reason="took longer than 30 minutes")
    run = make_run(started_at=datetime(2024, 1, 1))
    body = render.progress_comment(task, run, "pull_request")
    assert headline in body
    assert "took longer than 30 minutes" in body
    assert "`/agent retry`" in body
    # Facts say the workspace was set up and the agent never finished: that's where it stopped.
    assert f"- [ ] **Agent working** {icon}" in body
    assert "⏳" not in body


def test_a_stage_given_with_a_finished_task_is_where_it_stopped():
    task = make_task(status="failed", status_reason="agent exited with 1")
    run = make_run(started_at=datetime(2024, 1, 1), agent_seconds=3.0)
    lines = checklist_lines(render.progress_comment(task, run, "agent"))
    assert lines[:3] == ["- [x] Queued", "- [x] Setting up workspace", "- [ ] **Agent working** ❌"]


def test_failed_tests_show_on_the_checklist_and_the_pr_stays_linked():
    task = make_task(status="needs_attention", status_reason="tests failed", pr_number=4, branch="b",
                     base_sha="a", head_sha="c")
    run = make_run(started_at=datetime(2024, 1, 1), agent_seconds=2.0, tests_passed=False)
    body = render.progress_comment(task, run, "tests")
    assert "- [ ] Running tests: failed ❌" in body
    assert "- [ ] Pull request #4 (draft)" in body


def test_plan_tasks_have_their_own_stages():
    body = render.progress_comment(make_task(mode="plan", status="running"), make_run(), "agent")
    assert "**Agent planning** ⏳" in body
    assert "Committing changes" not in body


def test_user_text_cannot_ping_people_or_forge_markers():
    task = make_task(instruction="ask @bob and <!-- draftsmith:progress task=99 -->")
    body = render.progress_comment(task, make_run())
    assert "@bob" not in body
    assert render.find_marker(body) == 7
    assert "<!-- draftsmith:progress task=99" not in body


def test_progress_comment_stays_under_githubs_limit():
    body = render.progress_comment(make_task(instruction="x" * 200_000, status="failed", status_reason="y" * 200_000),
                                   make_run())
    assert len(body) <= 65_536


def test_a_custom_prefix_shows_in_hints():
    body = render.progress_comment(make_task(status="failed"), make_run(), prefix="/ds")
    assert "`/ds retry`" in body and "/agent" not in body


# --- check run ------------------------------------------------------------------------------------


def test_check_run_output_while_queued_and_running():
    queued = render.check_run_output(make_task(), make_run())
    assert queued["title"] == "Queued"
    assert set(queued) == {"title", "summary", "text"}
    running = render.check_run_output(make_task(status="running"), make_run(), stage="agent")
    assert running["title"] == "Agent working"
    assert "**Agent working** ⏳" in running["text"]


def test_check_run_output_reports_usage_cost_and_duration():
    run = make_run(started_at=datetime(2024, 1, 1, 12, 0), ended_at=datetime(2024, 1, 1, 12, 3, 5),
                   input_tokens=12_345, output_tokens=678, cost_usd=0.4567, agent_seconds=150.0, tests_passed=True)
    task = make_task(status="succeeded", pr_number=12, branch="b", base_sha="a", head_sha="c")
    output = render.check_run_output(task, run, stage="done")
    assert output["title"] == "Opened pull request #12"
    assert "Tokens: 12,345 in, 678 out" in output["summary"]
    assert "Cost: $0.46" in output["summary"]
    assert "Agent time: 2 min 30 s" in output["summary"]
    assert "Total time: 3 min 5 s" in output["summary"]
    assert "Tests: passed ✅" in output["text"]


def test_check_run_output_on_failure_names_the_reason_and_shows_the_error():
    task = make_task(status="failed", status_reason="agent exited with code 2\nmore detail")
    run = make_run(error="Traceback ...\n```oops```")
    output = render.check_run_output(task, run)
    assert output["title"] == "Failed: agent exited with code 2"
    assert "Traceback" in output["text"]
    assert "Tokens" not in output["summary"]


def test_check_run_summary_lists_the_files_that_cannot_be_committed():
    from app.engines.git.changes import ChangesRefused

    refused = ChangesRefused([(".Git/config", "has a name git refuses to commit"), ("big.bin", "is a 3.0 MB binary")])
    output = render.check_run_output(make_task(status="needs_attention", status_reason=str(refused)), make_run())

    assert output["title"] == "Needs attention: These files cannot be committed:"
    assert "- `.Git/config`: has a name git refuses to commit\n- `big.bin`: is a 3.0 MB binary" in output["summary"]


def test_blocked_hosts_are_listed_with_counts_and_the_line_that_would_allow_them():
    blocked = [render.Blocked("127.0.0.1:6379", 2, "one of Draftsmith's own services"),
               render.Blocked("pypi.org:443", 1, "not in network.allow", "pypi.org"),
               render.Blocked("registry.example.org:8443", 3, "not in network.allow", "registry.example.org:8443")]
    task = make_task(status="succeeded", pr_number=9)

    body = render.progress_comment(task, make_run(), blocked=blocked)
    summary = render.check_run_output(task, make_run(), blocked=blocked)["summary"]

    for text in (body, summary):
        assert "- `127.0.0.1:6379` ×2: one of Draftsmith's own services" in text
        assert "- `pypi.org:443`: not in network.allow" in text
        assert '`network: {allow: ["pypi.org", "registry.example.org:8443"]}`' in text
    assert "Blocked network access" not in render.progress_comment(task, make_run())


def test_a_run_without_isolation_says_so_where_people_look():
    task = make_task(status="running")
    assert "**Not isolated**" in render.progress_comment(task, make_run(), "agent", isolated=False)
    assert "unsafe-local" in render.check_run_output(task, make_run(), "agent", isolated=False)["summary"]


def test_check_run_output_without_changes():
    assert render.check_run_output(make_task(status="succeeded"), make_run())["title"] == "No changes"


# --- pull request body ----------------------------------------------------------------------------


def test_pr_body_links_the_issue_and_lists_what_changed():
    task = make_task(status="running")
    run = make_run(input_tokens=10, output_tokens=5, cost_usd=0.01)
    files = [render.FileChange("README.md", additions=1, deletions=1), render.FileChange("docs/new.md", "added"), "x.py"]
    body = render.pr_body(task, run, files, render.TestResult(True, "pytest -q"), summary="Fixed the typo.")
    assert "Closes #3." in body
    assert render.pr_marker(7) in body
    assert "Requested by @alice" in body
    assert "Fixed the typo." in body
    assert "**Files changed (3):**" in body
    assert "- `README.md` (+1 −1)" in body and "- `docs/new.md` (added)" in body and "- `x.py`" in body
    assert "**Tests:** passed ✅ (`pytest -q`)" in body
    assert "Cost: $0.01" in body


def test_follow_up_runs_on_a_pull_request_do_not_close_anything():
    body = render.pr_body(make_task(is_pull_request=True), make_run())
    assert "Closes" not in body


@pytest.mark.parametrize(
    ("result", "text"),
    [
        (None, "not run"),
        (True, "passed ✅"),
        (False, "failed ❌"),
        (render.TestResult(False, "make test", "E   assert 1 == 2"), "E   assert 1 == 2"),
    ],
)
def test_pr_body_test_results(result, text):
    assert text in render.pr_body(make_task(status="succeeded"), make_run(), [], result)


def test_a_draft_opened_before_the_agent_shows_its_checklist_and_no_test_verdict_yet():
    body = render.pr_body(make_task(status="queued"), make_run(), stage="queued", task_url="https://ds/tasks/7")
    assert "Closes #3." in body and "⏳ **Queued**" in body and "- [ ] **Queued** ⏳" in body
    assert "[logs and details](https://ds/tasks/7)" in body
    assert "**Tests:**" not in body, "no verdict before tests ran"
    working = render.pr_body(make_task(status="running"), make_run(), stage="agent", previous=body)
    assert "Work in progress" in working and "- [ ] **Agent working** ⏳" in working


def test_a_follow_up_keeps_the_introduction_of_the_task_that_opened_the_pull_request():
    opened = render.pr_body(make_task(status="succeeded", pr_number=9), make_run(), ["a.py"], True)
    follow_up = make_task(status="running", is_pull_request=True, issue_number=9, pr_number=9,
                          instruction="also b.py")
    body = render.pr_body(follow_up, make_run(), None, None, previous=opened, stage="agent")
    assert "Closes #3." in body and "also b.py" not in body.split("section progress")[0]
    assert "- `a.py`" in body


def test_commit_messages_link_the_session_log_and_credit_the_requester():
    task = make_task(status="running")
    start = render.start_commit_message(task, "https://ds/tasks/7")
    assert start.startswith("Start work on #3: ") and "Session log: https://ds/tasks/7" in start
    assert start.rstrip().endswith("Co-authored-by: alice <alice@users.noreply.github.com>")
    checkpoint = render.checkpoint_message(task, 2, None, why="saved when the run timed out")
    assert checkpoint.splitlines()[0] == "Checkpoint of 2 files saved when the run timed out"
    assert render.commit_message(task, "Fixed it", None).split("\n\n")[1] == "Fixed it"


def test_pr_body_keeps_sections_it_was_not_given_from_the_previous_body():
    first = render.pr_body(make_task(), make_run(), ["a.py", "b.py"], True, summary="First summary")
    second = render.pr_body(make_task(), make_run(), None, True, summary=None, previous=first,
                            draft_reason="tests failed (`pytest`)")
    assert "First summary" in second
    assert "- `b.py`" in second
    assert "stays a draft: tests failed" in second


# --- help -----------------------------------------------------------------------------------------


def test_help_constant_lists_every_verb():
    for verb in VERBS:
        assert f"`/agent {verb}" in render.HELP


def test_help_text_lists_verbs_flags_agents_and_effective_config():
    config = RepoConfig(command_prefix="/ds", agent="codex", test="pytest -q", allowed_bots=["renovate"])
    agents = [("codex", True, None), ("aider", False, "aider not found on PATH")]
    text = render.help_text(config, agents, slug=SLUG)
    for verb in VERBS:
        assert f"`/ds {verb}" in text
    assert "`--agent`" in text and "`--model`" in text and "`--base`" in text
    assert "- ✅ `codex` (default here)" in text
    assert "- ❌ `aider`: aider not found on PATH" in text
    assert "| `test` | `pytest -q` |" in text
    assert "| `allowed_bots` | `renovate` |" in text
    assert "@draftsmith fix the failing test" in text


def test_every_usage_line_in_help_parses_as_a_command():
    # The examples we show users must be commands we actually understand.
    for usage, _ in render.VERB_HELP:
        example = "/agent " + usage.replace("[--agent NAME]", "--agent codex").replace(
            "[--model NAME]", "--model m").replace("[--base BRANCH]", "--base main").replace("[instruction]", "do it")
        results = parse(example, app_slug=SLUG)
        assert len(results) == 1 and not isinstance(results[0], CommandError), (example, results)


# --- replies --------------------------------------------------------------------------------------


def test_command_error_reply_names_the_problem_and_points_to_help():
    error = parse("/agent rnu", app_slug=SLUG)[0]
    reply = render.command_error_reply(error, "/agent")
    assert "did you mean `run`?" in reply
    assert "`/agent help`" in reply
    assert "line 1" in reply
    assert "Nothing was started" in reply


def test_permission_refusal_is_polite_and_names_the_level():
    reply = render.permission_refusal("mallory", "write")
    assert "@mallory" in reply and "**write**" in reply and "Sorry" in reply


def test_busy_and_queued_replies_link_the_running_task_and_say_how_to_cancel():
    busy = render.busy_reply(make_task(status="running"), "https://ds/tasks/7", "/ds")
    assert "[a task](https://ds/tasks/7)" in busy and "`/ds cancel`" in busy
    assert "https://ds/tasks/7" in render.queued_behind_reply(make_task(), "https://ds/tasks/7")
    assert "a task" in render.busy_reply(make_task(), None)


@pytest.mark.parametrize(
    ("limit", "words"),
    [
        (LimitExceeded("daily", 200, 200, datetime(2024, 5, 2, tzinfo=UTC)), ["200 tasks a day", "00:00 UTC on 2024-05-02"]),
        (LimitExceeded("cost", 5.0, 5.3, datetime(2024, 5, 2)), ["$5.00", "00:00 UTC on 2024-05-02"]),
    ],
)
def test_limit_replies_say_when_the_limit_resets(limit, words):
    reply = render.limit_reply(limit)
    for word in words:
        assert word in reply
    assert "nothing was started" in reply.lower()


def test_config_error_comment_names_file_and_line():
    errors = [ConfigError(2, "unknown key `tset`; did you mean `test`?"),
              ConfigError(None, "`instructions_file`: docs/x.md was not found", "octo/demo:.github/draftsmith.yml")]
    comment = render.config_error_comment(errors, ".github/draftsmith.yml")
    assert "`.github/draftsmith.yml, line 2`: unknown key `tset`" in comment
    assert "`octo/demo:.github/draftsmith.yml`: `instructions_file`" in comment
    assert "defaults apply" in comment


def test_no_changes_plan_status_and_nothing_to_do_replies():
    assert "without changing any files" in render.no_changes_comment(make_task(), "Nothing needed @bob")
    assert "closed and its branch deleted" in render.no_changes_comment(make_task(), "", closing=True)
    assert "@bob" not in render.no_changes_comment(make_task(), "Nothing needed @bob")
    plan = render.plan_comment("1. Read the code\n2. Change it", task_id=7)
    assert "1. Read the code" in plan and "`/agent run`" in plan and render.find_marker(plan, "plan") == 7
    assert "No Draftsmith task" in render.status_reply(None, None)
    status = render.status_reply(make_task(status="running"), make_run(), "https://ds/tasks/7")
    assert "[#7](https://ds/tasks/7)" in status and "🛠️ Working" in status
    assert "cancel" in render.nothing_to_cancel() and "retry" in render.nothing_to_retry()


def test_our_own_replies_never_contain_commands_we_would_act_on():
    # Hints are in inline code, so even if a bot filter failed, our text would not trigger anything.
    task = make_task(status="failed")
    texts = [render.progress_comment(task, make_run()), render.HELP, render.nothing_to_retry(),
             render.busy_reply(task, None), render.no_changes_comment(task), render.plan_comment("x"),
             render.help_text(RepoConfig(), [("codex", True, None)], slug=SLUG)]
    for text in texts:
        assert parse(text, app_slug=SLUG) == [], text


@pytest.mark.parametrize(("seconds", "text"), [(0, "0 s"), (59.4, "59 s"), (61, "1 min 1 s"), (3_725, "1 h 2 min"), (None, "unknown")])
def test_durations(seconds, text):
    assert render.duration(seconds) == text


def test_status_shows_the_stage_the_run_reached():
    # `/agent status` while the agent works: the stage on the run row, not a guess from other fields
    status = render.status_reply(make_task(status="running"), make_run(stage="agent"))
    assert "- [x] Setting up workspace" in status and "**Agent working** ⏳" in status
