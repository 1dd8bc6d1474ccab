"""Each adapter against a stand-in CLI on PATH: the argv and environment it gets, and how its output is read."""

from __future__ import annotations

import pytest

from app.agents.base import AgentRequest, MissingCredentials, check_credentials
from app.agents.registry import UnknownAgent, all_agents, get_agent
from tests.agents import samples
from tests.agents._run import run_unsandboxed
from tests.agents.standin import StandIn

KEYS = {
    "ANTHROPIC_API_KEY": "sk-ant-test-anthropic-0001",
    "OPENAI_API_KEY": "sk-test-openai-0002",
    "GEMINI_API_KEY": "AIza-test-gemini-0003",
    "OPENROUTER_API_KEY": "sk-or-test-0004",
}
PROMPT = "Fix the typo in README.md.\nDo not commit."


@pytest.fixture
def bin_dir(tmp_path, monkeypatch):
    path = tmp_path / "agent-bin"
    path.mkdir()
    monkeypatch.setenv("DRAFTSMITH_AGENT_PATH", str(path))
    return path


@pytest.fixture
def workspace(tmp_path):
    path = tmp_path / "workspace"
    path.mkdir()
    (path / "README.md").write_text("teh readme\n")
    return path


def make_request(workspace, tmp_path, model=None, plan_mode=False, config=None, credentials=None):
    return AgentRequest(prompt=PROMPT, model=model, plan_mode=plan_mode, config=config or {},
                        credentials=dict(KEYS if credentials is None else credentials),
                        workspace=workspace, artifacts_dir=tmp_path / "artifacts")


def run(agent_name, binary, stdout, bin_dir, request, exit_code=0, stderr=""):
    standin = StandIn(bin_dir, binary).install(stdout=stdout, exit_code=exit_code, stderr=stderr)
    agent = get_agent(agent_name)
    invocation = agent.prepare(request)
    finished = run_unsandboxed(request, invocation)
    [call] = standin.calls
    return invocation, call, agent.parse_result(request, finished.exit_code, finished.stdout, finished.stderr)


def other_keys(call, keep):
    """Provider keys present in the agent's environment apart from the ones it needs."""
    return {k for k in KEYS if k in call["env"]} - set(keep)


def test_claude_code_runs_headless_with_edits_allowed_and_commits_forbidden(bin_dir, workspace, tmp_path):
    request = make_request(workspace, tmp_path, model="claude-sonnet-4-5")
    invocation, call, result = run("claude-code", "claude", samples.CLAUDE_OK, bin_dir, request)

    argv = call["argv"]
    assert argv[:3] == ["-p", "--output-format", "json"]
    assert argv[argv.index("--model") + 1] == "claude-sonnet-4-5"
    assert argv[argv.index("--permission-mode") + 1] == "acceptEdits"
    assert "Bash(git push:*)" in argv[argv.index("--disallowedTools") + 1]
    assert call["stdin"] == PROMPT and call["cwd"] == str(workspace)
    assert call["env"]["ANTHROPIC_API_KEY"] == KEYS["ANTHROPIC_API_KEY"]
    assert other_keys(call, ["ANTHROPIC_API_KEY"]) == set()
    assert call["env"]["HOME"].startswith(str(tmp_path / "artifacts"))

    assert result.success and result.summary == "Fixed the typo in README.md and ran the tests."
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.cost_usd) == (2000, 450, 0.0421)
    assert result.plan is None and result.transcript == samples.CLAUDE_OK


def test_claude_code_error_result_is_a_failure(bin_dir, workspace, tmp_path):
    _, _, result = run("claude-code", "claude", samples.CLAUDE_ERROR, bin_dir, make_request(workspace, tmp_path),
                       exit_code=1)
    assert not result.success and "error_max_turns" in result.summary
    assert result.usage.cost_usd == 0.31


def test_codex_exec_json_events_give_summary_and_tokens(bin_dir, workspace, tmp_path):
    request = make_request(workspace, tmp_path, model="gpt-5-codex")
    invocation, call, result = run("codex", "codex", samples.CODEX_OK, bin_dir, request)

    argv = call["argv"]
    assert argv[:2] == ["exec", "--json"] and argv[-1] == "-"
    assert "--dangerously-bypass-approvals-and-sandbox" in argv  # its own sandbox cannot start inside ours
    assert argv[argv.index("--model") + 1] == "gpt-5-codex"
    assert call["stdin"] == PROMPT
    assert other_keys(call, ["OPENAI_API_KEY"]) == set() and call["env"]["OPENAI_API_KEY"] == KEYS["OPENAI_API_KEY"]

    assert result.success and result.summary == "Fixed the typo."
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.cost_usd) == (24763, 122, None)


def test_codex_failed_turn_is_reported(bin_dir, workspace, tmp_path):
    _, _, result = run("codex", "codex", samples.CODEX_FAILED, bin_dir, make_request(workspace, tmp_path),
                       exit_code=1)
    assert not result.success and "401 Unauthorized" in result.summary


def test_aider_reads_the_prompt_file_never_commits_and_sums_its_token_lines(bin_dir, workspace, tmp_path):
    request = make_request(workspace, tmp_path, model="openrouter/anthropic/claude-sonnet-4.5")
    invocation, call, result = run("aider", "aider", samples.AIDER_OK, bin_dir, request)

    argv = call["argv"]
    prompt_file = argv[argv.index("--message-file") + 1]
    assert open(prompt_file).read() == PROMPT and not prompt_file.startswith(str(workspace))
    assert {"--yes-always", "--no-auto-commits", "--no-dirty-commits"} <= set(argv)
    assert not argv[argv.index("--chat-history-file") + 1].startswith(str(workspace))
    assert argv[argv.index("--model") + 1] == "openrouter/anthropic/claude-sonnet-4.5"
    assert call["env"]["OPENROUTER_API_KEY"] == KEYS["OPENROUTER_API_KEY"]
    assert other_keys(call, ["OPENROUTER_API_KEY"]) == set()

    assert result.success and "fix the typo" in result.summary
    assert "Tokens:" not in result.summary
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.cost_usd) == (3400, 225, 0.0141)


def test_gemini_json_stats_become_usage(bin_dir, workspace, tmp_path):
    request = make_request(workspace, tmp_path, model="gemini-2.5-pro")
    invocation, call, result = run("gemini", "gemini", samples.GEMINI_OK, bin_dir, request)

    argv = call["argv"]
    assert argv[argv.index("--output-format") + 1] == "json" and "-p" in argv
    assert argv[argv.index("--approval-mode") + 1] == "yolo"
    assert call["stdin"] == PROMPT
    assert other_keys(call, ["GEMINI_API_KEY"]) == set()

    assert result.success and result.summary == "Fixed the typo in README.md."
    assert (result.usage.input_tokens, result.usage.output_tokens) == (24939, 174)


def test_gemini_error_object_fails_the_run(bin_dir, workspace, tmp_path):
    _, _, result = run("gemini", "gemini", samples.GEMINI_ERROR, bin_dir, make_request(workspace, tmp_path),
                       exit_code=1)
    assert not result.success and "API key not valid" in result.summary


def test_opencode_run_json_sums_steps(bin_dir, workspace, tmp_path):
    request = make_request(workspace, tmp_path, model="anthropic/claude-sonnet-4-5")
    invocation, call, result = run("opencode", "opencode", samples.OPENCODE_OK, bin_dir, request)

    argv = call["argv"]
    assert argv[:3] == ["run", "--format", "json"] and argv[-1] == PROMPT
    assert argv[argv.index("--agent") + 1] == "build"
    assert other_keys(call, ["ANTHROPIC_API_KEY"]) == set()

    assert result.success and result.summary == "Fixed the typo in README.md."
    assert (result.usage.input_tokens, result.usage.output_tokens) == (1800, 250)
    assert result.usage.cost_usd == pytest.approx(0.015)


def test_opencode_error_event_fails_the_run(bin_dir, workspace, tmp_path):
    _, _, result = run("opencode", "opencode", samples.OPENCODE_ERROR, bin_dir, make_request(workspace, tmp_path),
                       exit_code=1)
    assert not result.success and "Invalid API key" in result.summary


@pytest.mark.parametrize(
    ("agent_name", "binary", "stdout", "flag", "expected"),
    [
        ("claude-code", "claude", samples.CLAUDE_OK, "--permission-mode", "plan"),
        ("gemini", "gemini", samples.GEMINI_OK, "--approval-mode", "default"),
        ("opencode", "opencode", samples.OPENCODE_OK, "--agent", "plan"),
        ("aider", "aider", samples.AIDER_OK, "--chat-mode", "ask"),
    ],
)
def test_plan_mode_uses_each_clis_read_only_mode_and_returns_the_plan(
    bin_dir, workspace, tmp_path, agent_name, binary, stdout, flag, expected
):
    request = make_request(workspace, tmp_path, plan_mode=True)
    invocation, call, result = run(agent_name, binary, stdout, bin_dir, request)

    assert call["argv"][call["argv"].index(flag) + 1] == expected
    assert not invocation.workspace_writable
    assert result.success and result.plan and result.plan in (result.summary, result.summary.strip())


def test_command_agent_runs_the_configured_line_with_the_prompt_file(workspace, tmp_path):
    config = {"agent": "command", "command": "cp {prompt_file} task.txt && echo changed {workspace} > done.txt"}
    request = make_request(workspace, tmp_path, config=config, credentials={"MY_TOOL_KEY": "secret-1234"})
    agent = get_agent("command")
    invocation = agent.prepare(request)
    finished = run_unsandboxed(request, invocation)

    assert (workspace / "task.txt").read_text() == PROMPT
    assert (workspace / "done.txt").read_text() == f"changed {workspace}\n"
    assert invocation.env["MY_TOOL_KEY"] == "secret-1234"  # bring-your-own CLIs get the stored keys
    result = agent.parse_result(request, finished.exit_code, finished.stdout, finished.stderr)
    assert result.success


def test_command_agent_failure_is_its_exit_code(workspace, tmp_path):
    request = make_request(workspace, tmp_path, config={"command": "echo boom >&2; exit 3"})
    agent = get_agent("command")
    finished = run_unsandboxed(request, agent.prepare(request))
    result = agent.parse_result(request, finished.exit_code, finished.stdout, finished.stderr)
    assert not result.success and "exited 3" in result.summary and "boom" in result.summary


def test_command_agent_quotes_paths_so_spaces_cannot_split_them(tmp_path):
    workspace = tmp_path / "work space; rm -rf x"
    workspace.mkdir()
    request = make_request(workspace, tmp_path, config={"command": "printf %s {workspace} > out.txt"})
    run_unsandboxed(request, get_agent("command").prepare(request))
    assert (workspace / "out.txt").read_text() == str(workspace)


def test_missing_key_fails_before_start_and_says_how_to_set_it(workspace, tmp_path):
    request = make_request(workspace, tmp_path, credentials={"OPENAI_API_KEY": "sk-x"})
    with pytest.raises(MissingCredentials) as error:
        check_credentials(get_agent("claude-code"), request, installation_id=42)
    assert "ANTHROPIC_API_KEY" in str(error.value)
    assert "draftsmith credentials set --installation 42 ANTHROPIC_API_KEY" in str(error.value)
    check_credentials(get_agent("codex"), request)  # has what it needs: no error


def test_openai_compatible_base_url_reaches_the_agent_with_its_key(bin_dir, workspace, tmp_path):
    credentials = {**KEYS, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    request = make_request(workspace, tmp_path, model="gpt-5", credentials=credentials)
    invocation, call, _ = run("codex", "codex", samples.CODEX_OK, bin_dir, request)
    assert call["env"]["OPENAI_BASE_URL"] == "http://127.0.0.1:9/v1"
    # Codex reads a base URL only from a provider in its config file
    assert 'base_url = "http://127.0.0.1:9/v1"' in invocation.files["home/.codex/config.toml"]


def test_unknown_agent_lists_the_known_names():
    with pytest.raises(UnknownAgent) as error:
        get_agent("copilot")
    message = str(error.value)
    assert "copilot" in message
    assert all(agent.name in message for agent in all_agents())
    assert {a.name for a in all_agents()} == {"claude-code", "codex", "aider", "mini-swe-agent", "gemini",
                                              "opencode", "command"}


def test_a_key_the_agent_echoed_is_redacted_from_summary_transcript_and_plan(bin_dir, workspace, tmp_path):
    leaked = samples.CLAUDE_OK.replace("Fixed the typo", f"My key is {KEYS['ANTHROPIC_API_KEY']}. Fixed the typo")
    request = make_request(workspace, tmp_path, plan_mode=True)
    _, _, result = run("claude-code", "claude", leaked, bin_dir, request)
    assert KEYS["ANTHROPIC_API_KEY"] in result.transcript  # the raw result does hold it...

    from app.agents.base import redact

    clean = redact(result, list(request.credentials.values()))
    for text in (clean.summary, clean.transcript, clean.plan):
        assert KEYS["ANTHROPIC_API_KEY"] not in text and "[redacted]" in text
