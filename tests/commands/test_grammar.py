"""The command grammar: what a commenter writes and what Draftsmith understands from it."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from app.commands.grammar import FLAGS, VERBS, Command, CommandError, parse

SLUG = "draftsmith"


def only(body: str, **kwargs) -> Command | CommandError:
    results = parse(body, app_slug=SLUG, **kwargs)
    assert len(results) == 1, results
    return results[0]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("/agent run", Command("run")),
        ("/agent run fix the typo", Command("run", "fix the typo")),
        ("/AGENT RUN Fix it", Command("run", "Fix it")),
        ("   /agent run indented a little", Command("run", "indented a little")),
        ("/agent run --agent codex fix it", Command("run", "fix it", agent="codex")),
        ("/agent run --agent=codex --model=gpt-5 fix it", Command("run", "fix it", agent="codex", model="gpt-5")),
        ("/agent run --base release/1.x", Command("run", base="release/1.x")),
        ("/agent run --new-pr fix it", Command("run", "fix it", new_pr=True)),
        ("/agent run --agent codex --new-pr", Command("run", agent="codex", new_pr=True)),
        ('/agent run --model "my model" go', Command("run", "go", model="my model")),
        ("/agent run --model 'it'\"'\"'s' go", Command("run", "go", model="it's")),
        ("/agent run fix the --verbose flag", Command("run", "fix the --verbose flag")),
        ("/agent run -- --verbose is broken", Command("run", "--verbose is broken")),
        ("/agent run it's broken, don't panic", Command("run", "it's broken, don't panic")),
        ("/agent plan", Command("plan")),
        ("/agent plan --agent aider refactor the parser", Command("plan", "refactor the parser", agent="aider")),
        ("/agent cancel", Command("cancel")),
        ("/agent retry", Command("retry")),
        ("/agent retry --model bigger", Command("retry", model="bigger")),
        ("/agent status", Command("status")),
        ("/agent status please", Command("status")),
        ("/agent help", Command("help")),
        ("/agent help me", Command("help")),
        ("/agent", Command("help")),
    ],
)
def test_prefix_commands_are_read(body, expected):
    assert only(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("@draftsmith fix the login bug", Command("run", "fix the login bug", via_mention=True)),
        ("@Draftsmith, please add tests", Command("run", "please add tests", via_mention=True)),
        ("@draftsmith: add tests", Command("run", "add tests", via_mention=True)),
        ("@draftsmith[bot] add tests", Command("run", "add tests", via_mention=True)),
        ("@draftsmith help", Command("help", via_mention=True)),
        ("@draftsmith cancel.", Command("cancel", via_mention=True)),
        ("@draftsmith Status?", Command("status", via_mention=True)),
        ("@draftsmith plan", Command("plan", via_mention=True)),
        ("@draftsmith help me write the docs", Command("run", "help me write the docs", via_mention=True)),
        # Flags are not read after a mention: its text is what the user said.
        ("@draftsmith --agent codex go", Command("run", "--agent codex go", via_mention=True)),
    ],
)
def test_mentions_are_free_form_instructions_unless_one_verb_word(body, expected):
    assert only(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        "thanks @draftsmith!",  # not at line start
        "@draftsmith-dev fix it",  # another account
        "@draftsmithy fix it",
        "/agents run",
        "/agent-run",
        "- /agent run",  # list items are prose
        "please /agent run",
    ],
)
def test_lines_that_only_look_like_commands_are_prose(body):
    assert parse(body, app_slug=SLUG) == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("/agent rnu", "did you mean `run`"),
        ("/agent stauts", "did you mean `status`"),
        ("/agent frobnicate", "the commands are `run`"),
        ("/agent run --modle x go", "did you mean `--model`"),
        ("/agent run --colour red", "unknown flag `--colour`"),
        ("/agent run --agent", "`--agent` needs a value"),
        ("/agent run --agent=", "`--agent` needs a value"),
        ("/agent run --agent --model x", "`--agent` needs a value"),
        ("/agent run --agent ''", "`--agent` needs a value"),
        ("/agent run --agent 'open", "never closed"),
        ("/agent run --agent a --agent b", "given twice"),
        ("/agent retry with a smaller diff", "`retry` takes no instruction"),
        ("/agent cancel now", "`cancel` takes no instruction"),
        ("/agent cancel --agent x", "`cancel` doesn't take `--agent`"),
        ("/agent plan --new-pr", "`plan` doesn't take `--new-pr`"),
        ("/agent run --new-pr=yes", "`--new-pr` takes no value"),
        ("/agent run --new-pr --new-pr", "`--new-pr` is given twice"),
        ("/agent run --newpr", "unknown flag `--newpr`; did you mean `--new-pr`?"),
        ("/agent retry --base main", "`retry` doesn't take `--base`"),
        ("@draftsmith", "doesn't say what to do"),
        ("@draftsmith ,  ", "doesn't say what to do"),
    ],
)
def test_unreadable_commands_name_the_problem(body, problem):
    error = only(body)
    assert isinstance(error, CommandError)
    assert problem in error.message
    assert error.line == 1
    assert error.text == body.strip()


def test_bare_run_on_a_pull_request_asks_for_an_instruction():
    error = only("/agent run", on_pull_request=True)
    assert isinstance(error, CommandError)
    assert "needs an instruction" in error.message
    assert only("/agent run fix the review comments", on_pull_request=True) == Command(
        "run", "fix the review comments"
    )
    assert only("/agent run") == Command("run")


def test_one_command_per_line_with_line_numbers():
    body = "Thanks!\r\n/agent status\r\n\r\n/agent rnu\r\n@draftsmith cancel\r\n"
    assert parse(body, app_slug=SLUG) == [
        Command("status", line=2),
        CommandError(4, "unknown command `rnu`; did you mean `run`?", "/agent rnu"),
        Command("cancel", line=5, via_mention=True),
    ]


def test_instruction_continues_over_its_paragraph():
    body = "/agent run refactor the parser\nand keep the public API.\n\nUnrelated text."
    assert parse(body, app_slug=SLUG) == [Command("run", "refactor the parser\nand keep the public API.")]


def test_instruction_on_following_lines_after_a_bare_run():
    body = "/agent run\nRename foo to bar\neverywhere."
    assert only(body) == Command("run", "Rename foo to bar\neverywhere.")


def test_continuation_stops_at_the_next_command_and_at_code():
    body = "/agent run first\n/agent status\n/agent plan second\n```\nnot part\n```"
    assert parse(body, app_slug=SLUG) == [
        Command("run", "first", line=1),
        Command("status", line=2),
        Command("plan", "second", line=3),
    ]


def test_cancel_does_not_swallow_the_next_line():
    assert parse("/agent cancel\nthanks anyway", app_slug=SLUG) == [Command("cancel")]


def test_custom_prefix_replaces_the_default():
    assert parse("/ds run go\n\n/agent run no", app_slug=SLUG, prefix="/ds") == [Command("run", "go")]


@pytest.mark.parametrize(
    "body",
    [
        "```\n/agent run\n```",
        "~~~\n/agent run\n~~~",
        "````markdown\n```\n/agent run\n```\n````",  # a longer fence holds a shorter one
        "  ```\n/agent run\n  ```",  # indented fence, as inside a list item
        "    ```\n/agent run\n    ```",
        "```\n/agent run",  # an unclosed fence runs to the end
        "```python\n@draftsmith fix it\n```",
        "> /agent run",
        "> quoted\n> @draftsmith fix it",
        "  > /agent cancel",
        "`/agent run`",
        "see ``\n/agent run\n`` here",  # an inline code span across lines
        "    /agent run",  # an indented code block
        "\t/agent run",
        "<!-- /agent run -->",
        "<!--\n/agent run\n-->",
        "<!-- template:\n@draftsmith fix it\n-->",
    ],
)
def test_code_quotes_and_html_comments_never_hold_commands(body):
    assert parse(body, app_slug=SLUG) == []


def test_commands_after_a_closed_fence_count_again():
    body = "```\n/agent run inside\n```\n/agent run outside"
    assert parse(body, app_slug=SLUG) == [Command("run", "outside", line=4)]


def test_inline_code_in_an_instruction_is_kept():
    assert only("/agent run rename `foo` to `bar`") == Command("run", "rename `foo` to `bar`")


def test_a_backtick_line_that_is_not_a_fence_does_not_hide_later_commands():
    # "```x```" is an inline code span, not a fence opener (its info string has a backtick).
    assert parse("```x```\n\n/agent status", app_slug=SLUG) == [Command("status", line=3)]


# --- properties -----------------------------------------------------------------------------------

slugs = st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True)
words = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,12}", fullmatch=True)
flag_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=12
).filter(lambda v: v.strip() and v == v.replace("\n", ""))
instructions = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp", "Zs")), min_size=1, max_size=10),
    min_size=1,
    max_size=6,
).map(" ".join)


@settings(max_examples=300)
@given(body=st.text(), slug=slugs, prefix=st.sampled_from(["/agent", "/ds", "!bot"]))
def test_parse_never_raises(body, slug, prefix):
    for result in parse(body, app_slug=slug, prefix=prefix):
        assert isinstance(result, (Command, CommandError))
        if isinstance(result, Command):
            assert result.verb in VERBS


command_lines = st.one_of(
    st.builds(lambda i: f"/agent run {i}", instructions),
    st.builds(lambda i: f"@{SLUG} {i}", instructions),
    st.sampled_from([f"/agent {verb}" for verb in VERBS]),
    st.text(),
)


@settings(max_examples=200)
@given(
    inner=st.lists(command_lines, max_size=6),
    fence=st.sampled_from(["```", "~~~", "````", "~~~~~"]),
    info=st.sampled_from(["", "python", " text"]),
    indent=st.sampled_from(["", "  ", "    "]),
    before=st.text(max_size=30),
    after=st.sampled_from(["", "\n/agent status"]),
)
def test_nothing_inside_a_code_fence_is_a_command(inner, fence, info, indent, before, after):
    inner_text = "\n".join(inner).replace("\r", "\n")
    # The generated content must not close the fence itself.
    assume(not any(line.strip() and set(line.strip()) <= set(fence[0]) for line in inner_text.split("\n")))
    assume("```" not in before and "~~~" not in before and "<!--" not in before and "`" not in before)
    head = f"{before}\n\n" if before.strip() else ""
    body = f"{head}{indent}{fence}{info}\n{inner_text}\n{indent}{fence}{after}"
    first = head.count("\n") + 1
    last = first + inner_text.count("\n") + 2
    for result in parse(body, app_slug=SLUG):
        assert not first <= result.line <= last, (body, result)


@settings(max_examples=200)
@given(lines=st.lists(command_lines, min_size=1, max_size=6), marker=st.sampled_from([">", "> ", "  > "]))
def test_nothing_quoted_is_a_command(lines, marker):
    body = "\n".join(marker + line.replace("\r", " ").replace("\n", " ") for line in lines)
    assert parse(body, app_slug=SLUG) == []


@settings(max_examples=300)
@given(
    verb=st.sampled_from(VERBS),
    values=st.fixed_dictionaries({}, optional={flag: flag_values for flag in FLAGS}),
    instruction=instructions,
    new_pr=st.booleans(),
)
def test_a_rendered_command_reads_back_to_itself(verb, values, instruction, new_pr):
    from app.commands.grammar import TAKES_INSTRUCTION, VERB_FLAGS

    values = {name: value for name, value in values.items() if name in VERB_FLAGS[verb]}
    new_pr = new_pr and "new-pr" in VERB_FLAGS[verb]
    command = Command(verb, instruction if verb in TAKES_INSTRUCTION else "", new_pr=new_pr, **values)
    assert parse(command.render(), app_slug=SLUG) == [command]
    assert parse(command.render("/ds"), app_slug=SLUG, prefix="/ds") == [command]


@settings(max_examples=200)
@given(
    prose=st.lists(st.from_regex(r"[A-Za-z][A-Za-z ,.]{0,30}", fullmatch=True), max_size=3),
    instruction=instructions,
)
def test_a_command_after_prose_is_found_on_its_own_line(prose, instruction):
    # Text that starts with a dash reads as flags (or "--", the end of flags); render() guards that case.
    assume(not instruction.strip().startswith("-"))
    head = "\n".join(prose)
    body = f"{head}\n\n/agent run {instruction}" if prose else f"/agent run {instruction}"
    results = parse(body, app_slug=SLUG)
    assert results == [Command("run", instruction.strip(), line=body.count("\n") + 1)]
