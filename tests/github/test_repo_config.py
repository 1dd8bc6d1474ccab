"""`.github/draftsmith.yml`: defaults, line-numbered errors, partial application and `_extends`."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.github.repo_config import (
    CONFIG_PATH,
    DEFAULT_AGENT,
    ExtendsTarget,
    RepoConfig,
    combine,
    merge,
    parse_config,
    parse_extends,
)


def test_an_empty_file_means_defaults():
    result = parse_config("")
    assert result.errors == []
    config = result.config
    assert config == RepoConfig()
    assert (config.agent, config.runner, config.command_prefix, config.required_permission) == (
        DEFAULT_AGENT, "sandbox", "/agent", "write")
    assert (config.trigger_label, config.test, config.max_runtime_minutes, config.branch_prefix) == (
        None, None, 30, "draftsmith")
    assert config.on_busy == "reply" and config.setup == [] and config.allowed_bots == []


def test_a_full_valid_file_applies_every_key():
    text = """\
agent: Codex
model: gpt-5
runner: actions
trigger_label: agent
command_prefix: /ds
required_permission: maintain
allowed_bots: [dependabot, renovate]
setup:
  - pip install -e .
test: pytest -q
max_runtime_minutes: 45
branch_prefix: bots/draftsmith
instructions_file: docs/agents.md
on_busy: queue
requeue_dead_runs: yes
"""
    result = parse_config(text)
    assert result.errors == []
    config = result.config
    assert config.agent == "codex"  # names are case-insensitive
    assert config.model == "gpt-5" and config.runner == "actions" and config.trigger_label == "agent"
    assert config.command_prefix == "/ds" and config.required_permission == "maintain"
    assert config.allowed_bots == ["dependabot", "renovate"]
    assert config.setup == ["pip install -e ."] and config.test == "pytest -q"
    assert config.max_runtime_minutes == 45 and config.branch_prefix == "bots/draftsmith"
    assert config.instructions_file == "docs/agents.md" and config.on_busy == "queue"
    assert config.requeue_dead_runs is True


def test_the_command_agent_contract_keys():
    result = parse_config('agent: command\ncommand: "sh ./fix.sh {prompt_file}"\n')
    assert result.errors == []
    assert (result.config.agent, result.config.command) == ("command", "sh ./fix.sh {prompt_file}")


def test_a_single_setup_command_may_be_a_string():
    assert parse_config("setup: make deps\n").config.setup == ["make deps"]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("agent: codex\ntset: pytest\n", 2, "unknown key `tset`; did you mean `test`?"),
        ("colour: blue\n", 1, "unknown key `colour`"),
        ("runner: lambda\n", 1, "`runner`"),
        ("\n\nmax_runtime_minutes: 0\n", 3, "`max_runtime_minutes`"),
        ("max_runtime_minutes: soon\n", 1, "`max_runtime_minutes`"),
        ("required_permission: none\n", 1, "`required_permission`"),
        ("command_prefix: /two words\n", 1, "one word"),
        ("command_prefix: '>quoted'\n", 1, "Markdown"),
        ("branch_prefix: 'bad..name'\n", 1, "git branch name"),
        ("instructions_file: ../../etc/passwd\n", 1, "inside the repository"),
        ("setup:\n  - make\n  - [not, a, string]\n", 3, "`setup.1`"),
        ("agent: command\n", 1, "needs a `command:` line"),
        ("agent: 'rm -rf /'\n", 1, "agent name"),
        ("test: pytest\ntest: tox\n", 2, "more than once"),
        ("agent: [unclosed\n", 2, "invalid YAML"),
        ("agent: codex\n  model: x\n", 2, "invalid YAML"),
        ("- a list\n", 1, "must be a mapping"),
    ],
)
def test_errors_name_the_line(text, line, words):
    errors = parse_config(text).errors
    assert any(error.line == line and words in error.message for error in errors), errors
    assert all(error.path == CONFIG_PATH for error in errors)


def test_bad_keys_fall_back_to_their_defaults_and_the_rest_still_applies():
    text = "agent: codex\ntset: pytest\nrunner: lambda\nmax_runtime_minutes: 5\nsetup: [make, 3]\n"
    result = parse_config(text)
    assert [error.line for error in result.errors] == [2, 3, 5]  # in file order
    assert result.config.agent == "codex"
    assert result.config.max_runtime_minutes == 5
    assert result.config.runner == "sandbox"
    assert result.config.setup == []


def test_network_allow_keeps_good_entries_and_names_the_line_of_each_bad_one():
    text = ('agent: codex\nnetwork:\n  allow:\n    - pypi.org\n    - "https://files.example.org/simple"\n'
            '    - "*.npmjs.org"\n    - 8080\n    - "*"\n')
    result = parse_config(text)

    assert result.config.network.allow == ["pypi.org", "*.npmjs.org"]
    assert result.config.network.enabled
    assert [error.line for error in result.errors] == [5, 7, 8]
    assert all("`network.allow`" in error.message and "the other entries apply" in error.message
               for error in result.errors)
    assert "files.example.org" in result.errors[0].message


@pytest.mark.parametrize("text", ["network: off\n", "network: false\n", "network: 'off'\n"])
def test_network_off_turns_egress_off(text):
    result = parse_config(text)
    assert result.errors == [] and result.config.network.enabled is False


def test_invalid_yaml_means_all_defaults():
    result = parse_config("agent: codex\nrunner: [\n")
    assert result.config == RepoConfig()
    assert len(result.errors) == 1


def test_error_text_reads_as_file_and_line():
    error = parse_config("x: 1\n").errors[0]
    assert str(error).startswith(f"{CONFIG_PATH}:1: unknown key `x`")


def test_python_tags_are_refused_not_executed():
    result = parse_config("agent: !!python/object/apply:os.system ['echo hi']\n")
    assert result.config == RepoConfig()
    assert result.errors and "invalid YAML" in result.errors[0].message


def test_oversized_files_are_refused():
    result = parse_config("test: " + "x" * 70_000)
    assert result.config == RepoConfig()
    assert "KB" in result.errors[0].message


@settings(max_examples=200)
@given(st.text(max_size=300))
def test_parse_config_never_raises(text):
    result = parse_config(text)
    assert isinstance(result.config, RepoConfig)


@settings(max_examples=100)
@given(st.dictionaries(st.sampled_from(sorted(RepoConfig.model_fields) + ["typo", "_extends"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                                 st.lists(st.text(max_size=10), max_size=3))))
def test_any_mapping_yields_a_config_and_every_error_has_a_line(data):
    import yaml

    result = parse_config(yaml.safe_dump(data))
    assert isinstance(result.config, RepoConfig)
    for error in result.errors:
        assert error.line is not None and error.line >= 1


# --- _extends -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (".github", ExtendsTarget("octo", ".github")),
        ("shared", ExtendsTarget("octo", "shared")),
        ("other/config", ExtendsTarget("other", "config")),
        ("other/config:bots/draftsmith.yml", ExtendsTarget("other", "config", "bots/draftsmith.yml")),
        (".github:ci/draftsmith.yml", ExtendsTarget("octo", ".github", "ci/draftsmith.yml")),
        ("", None),
        ("a/b/c", None),
        ("other/config:../secrets", None),
    ],
)
def test_extends_forms(value, expected):
    assert parse_extends(value, "octo") == expected


def test_merge_overrides_scalars_and_lists_and_merges_mappings():
    base = {"agent": "codex", "setup": ["a", "b"], "nested": {"x": 1, "y": 2}, "_extends": "ignored"}
    override = {"setup": ["c"], "nested": {"y": 3}, "test": "pytest", "_extends": ".github"}
    assert merge(base, override) == {
        "agent": "codex", "setup": ["c"], "nested": {"x": 1, "y": 3}, "test": "pytest"}


def test_extended_file_provides_defaults_the_repository_overrides():
    shared = ("octo/.github:.github/draftsmith.yml", "agent: codex\ntest: make test\nallowed_bots: [renovate]\n")
    own = ("octo/app:.github/draftsmith.yml", "_extends: .github\ntest: pytest\n")
    result = combine(shared, own)
    assert result.errors == []
    assert result.extends == ".github"
    assert (result.config.agent, result.config.test, result.config.allowed_bots) == ("codex", "pytest", ["renovate"])


def test_errors_in_an_extended_file_name_that_file():
    shared = ("octo/.github:.github/draftsmith.yml", "agent: codex\n\nrunnr: actions\n")
    own = ("octo/app:.github/draftsmith.yml", "_extends: .github\nmax_runtime_minutes: 0\n")
    errors = combine(shared, own).errors
    assert {(error.path, error.line) for error in errors} == {
        ("octo/.github:.github/draftsmith.yml", 3),
        ("octo/app:.github/draftsmith.yml", 2),
    }


@pytest.mark.parametrize(("text", "blocking"), [
    ("agent: command\n", True),
    ("runner: kubernetes-maybe\n", True),
    ("required_permission: none\n", True),
    ("agent: [oops\n", True),
    ("max_runtime_minutes: forever\n", False),
    ("on_busy: shout\n", False),
])
def test_only_errors_no_default_may_stand_in_for_block_a_task(text, blocking):
    [error] = parse_config(text).errors
    assert error.blocking is blocking


@pytest.mark.parametrize(("text", "enabled", "attempts"), [
    ("", True, 2),
    ("fix_ci: false", False, 2),
    ("fix_ci: {max_attempts: 5}", True, 5),
    ("fix_ci:\n  enabled: false\n  max_attempts: 1", False, 1),
])
def test_fixing_ci_is_on_by_default_and_bounded(text, enabled, attempts):
    result = parse_config(text)
    assert result.errors == []
    assert (result.config.fix_ci.enabled, result.config.fix_ci.max_attempts) == (enabled, attempts)


def test_an_unbounded_ci_fix_loop_is_refused():
    result = parse_config("fix_ci: {max_attempts: 0}")
    assert result.errors and "max_attempts" in str(result.errors[0])
