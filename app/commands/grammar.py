"""The command grammar (pure): comment text in, `Command`s and `CommandError`s out.

What counts as a command (the rules users rely on, also shown by `/agent help`):

- A line that starts with the prefix (default `/agent`, case-insensitive, up to three spaces of
  indentation) followed by a verb: `/agent run [--agent NAME] [--model NAME] [--base BRANCH] [instruction]`.
  `/agent` on its own means `/agent help`.
- A line that starts with a mention of the app (`@slug`, also `@slug[bot]`, case-insensitive). The text
  after the mention is a free-form `run` instruction, except when it is exactly one verb word
  (`@slug help`, `@slug cancel.`), which is that verb. `@slug` with no text is an error.
- Flags come before the instruction: the first word that is not a flag starts the instruction, and the
  rest of the line is taken as written (so "fix the --verbose flag" needs no quoting). `--` ends the
  flags explicitly. Flag values may be quoted shell-style (`--model "my model"`) or given as `--flag=value`.
- A `run` or `plan` instruction continues over the following lines of the same paragraph, up to a blank
  line, a code fence, a quote or the next command, because people write requests in paragraphs.
- Never commands: anything inside fenced code blocks (``` or ~~~, any length, any indentation), indented
  code blocks, inline code spans (also across lines), `>` quotes and HTML comments.
- `help` and `status` ignore extra words (harmless); `cancel` and `retry` refuse them, because
  "retry with a smaller change" would otherwise silently drop the user's intent.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass

VERBS: tuple[str, ...] = ("run", "plan", "cancel", "retry", "status", "help")
FLAGS: tuple[str, ...] = ("agent", "model", "base")
# Flags without a value. `--new-pr`: on someone's pull request, open a new one instead of adding to theirs.
SWITCHES: tuple[str, ...] = ("new-pr",)
# Which flags each verb accepts; retry may switch agent or model for the new attempt.
VERB_FLAGS: dict[str, frozenset[str]] = {
    "run": frozenset({*FLAGS, *SWITCHES}),
    "plan": frozenset(FLAGS),
    "retry": frozenset({"agent", "model"}),
    "cancel": frozenset(),
    "status": frozenset(),
    "help": frozenset(),
}
TAKES_INSTRUCTION = frozenset({"run", "plan"})
_LENIENT = frozenset({"help", "status"})


@dataclass(frozen=True)
class Command:
    """One command found in a comment; `line` is 1-based within the comment body."""

    verb: str
    instruction: str = ""
    agent: str | None = None
    model: str | None = None
    base: str | None = None
    new_pr: bool = False
    line: int = 1
    via_mention: bool = False

    def render(self, prefix: str = "/agent") -> str:
        """The canonical text of this command, which `parse` reads back to the same command."""
        parts = [prefix, self.verb]
        for name in FLAGS:
            value = getattr(self, name)
            if value is not None:
                parts += [f"--{name}", _quote(value)]
        if self.new_pr:
            parts.append("--new-pr")
        if self.instruction:
            if self.instruction.startswith("-"):
                parts.append("--")
            parts.append(self.instruction)
        return " ".join(parts)


@dataclass(frozen=True)
class CommandError:
    """A line that was meant as a command but can't be read; `message` names the problem."""

    line: int
    message: str
    text: str = ""


def parse(
    body: str, *, app_slug: str, prefix: str = "/agent", on_pull_request: bool = False
) -> list[Command | CommandError]:
    """Every command in a comment body, in order. Never raises.

    `on_pull_request`: a bare `/agent run` on a pull request has nothing to work from (on an issue the
    issue itself is the instruction), so it is an error there.
    """
    results: list[Command | CommandError] = []
    lines = _candidate_lines(body or "")
    index = 0
    while index < len(lines):
        number, text = lines[index]
        index += 1
        if text is None:
            continue
        parsed = _parse_line(text, number, app_slug=app_slug, prefix=prefix)
        if parsed is None:
            continue
        if isinstance(parsed, Command) and parsed.verb in TAKES_INSTRUCTION:
            extra = []
            while index < len(lines) and lines[index][1] is not None:
                following = lines[index][1]
                if _parse_line(following, 0, app_slug=app_slug, prefix=prefix) is not None:
                    break
                extra.append(following.strip())
                index += 1
            if extra:
                joined = "\n".join(([parsed.instruction] if parsed.instruction else []) + extra)
                parsed = _replace(parsed, instruction=joined)
            if on_pull_request and parsed.verb == "run" and not parsed.instruction:
                parsed = CommandError(
                    number,
                    "`run` on a pull request needs an instruction saying what to change "
                    "(or use `retry` to repeat the last run)",
                    text.strip(),
                )
        results.append(parsed)
    return results


def suggest_verb(word: str) -> str | None:
    """The verb closest to a mistyped one, if any is close."""
    matches = difflib.get_close_matches(word.lower(), VERBS, n=1, cutoff=0.6)
    return matches[0] if matches else None


# --- one line -------------------------------------------------------------------------------------


def _parse_line(text: str, number: int, *, app_slug: str, prefix: str) -> Command | CommandError | None:
    stripped = text.lstrip(" ")
    if len(text) - len(stripped) > 3 or stripped.startswith("\t"):
        return None  # an indented code block
    rest = _after_prefix(stripped, prefix)
    if rest is not None:
        return _parse_prefixed(rest, number, stripped.rstrip())
    rest = _after_mention(stripped, app_slug)
    if rest is not None:
        return _parse_mention(rest, number, stripped.rstrip())
    return None


def _after_prefix(line: str, prefix: str) -> str | None:
    prefix = prefix.strip()
    if not prefix or line[: len(prefix)].lower() != prefix.lower():
        return None
    rest = line[len(prefix) :]
    if rest and not rest[0].isspace():
        return None  # `/agents` or `/agent-x` is someone else's command
    return rest


def _after_mention(line: str, app_slug: str) -> str | None:
    app_slug = app_slug.removesuffix("[bot]").lstrip("@")
    if not app_slug:
        return None
    match = re.match(rf"@{re.escape(app_slug)}(?:\[bot\])?(?![\w\-\[])", line, re.IGNORECASE)
    if match is None:
        return None
    return line[match.end() :]


def _parse_mention(rest: str, number: int, original: str) -> Command | CommandError:
    # People write "@draftsmith, please ..." or "@draftsmith: ...".
    instruction = rest.lstrip(" \t:,").strip()
    if not instruction:
        return CommandError(number, "the mention doesn't say what to do: add an instruction after it", original)
    word = instruction.rstrip(".!?").strip().lower()
    if word in VERBS:
        return Command(word, line=number, via_mention=True)
    return Command("run", instruction=instruction, line=number, via_mention=True)


def _parse_prefixed(rest: str, number: int, original: str) -> Command | CommandError:
    rest = rest.strip()
    if not rest:
        return Command("help", line=number)
    verb_text, after = re.match(r"(\S+)(.*)", rest, re.DOTALL).groups()  # type: ignore[union-attr]
    verb = verb_text.lower()
    if verb not in VERBS:
        close = suggest_verb(verb)
        hint = f"; did you mean `{close}`?" if close else f"; the commands are {_verb_list()}"
        return CommandError(number, f"unknown command `{verb_text}`{hint}", original)
    if verb in _LENIENT:
        return Command(verb, line=number)
    flags = _read_flags(after, verb, number, original)
    if isinstance(flags, CommandError):
        return flags
    values, instruction = flags
    if instruction and verb not in TAKES_INSTRUCTION:
        return CommandError(
            number,
            f"`{verb}` takes no instruction (to ask for something new, use `run <instruction>`)",
            original,
        )
    return Command(verb, instruction=instruction, line=number, **values)


def _read_flags(text: str, verb: str, number: int, original: str) -> tuple[dict[str, str | bool], str] | CommandError:
    values: dict[str, str | bool] = {}
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if not text.startswith("--", position):
            return values, text[position:].strip()
        token_end = position
        while token_end < len(text) and not text[token_end].isspace() and text[token_end] != "=":
            token_end += 1
        name = text[position + 2 : token_end].lower()
        if not name:  # a bare `--` ends the flags
            return values, text[token_end:].strip()
        if name not in FLAGS and name not in SWITCHES:
            close = difflib.get_close_matches(name, FLAGS + SWITCHES, n=1, cutoff=0.6)
            hint = f"; did you mean `--{close[0]}`?" if close else f"; the flags are {_flag_list()}"
            return CommandError(number, f"unknown flag `--{name}`{hint}", original)
        if name not in VERB_FLAGS[verb]:
            return CommandError(number, f"`{verb}` doesn't take `--{name}`", original)
        key = name.replace("-", "_")
        if key in values:
            return CommandError(number, f"`--{name}` is given twice", original)
        position = token_end
        if name in SWITCHES:
            if position < len(text) and text[position] == "=":
                return CommandError(number, f"`--{name}` takes no value", original)
            values[key] = True
            continue
        if position < len(text) and text[position] == "=":
            position += 1
        else:
            while position < len(text) and text[position].isspace():
                position += 1
        if position >= len(text) or text.startswith("--", position) or text[position].isspace():
            return CommandError(number, f"`--{name}` needs a value", original)
        token = _read_token(text, position)
        if token is None:
            return CommandError(number, f"the value of `--{name}` has a quote that is never closed", original)
        value, position = token
        if not value.strip():
            return CommandError(number, f"`--{name}` needs a value", original)
        values[name] = value


def _read_token(text: str, position: int) -> tuple[str, int] | None:
    """One shell-style word (POSIX quoting rules, like shlex); None when a quote is left open."""
    out: list[str] = []
    while position < len(text) and not text[position].isspace():
        char = text[position]
        if char == "'":
            end = text.find("'", position + 1)
            if end < 0:
                return None
            out.append(text[position + 1 : end])
            position = end + 1
        elif char == '"':
            position += 1
            while True:
                if position >= len(text):
                    return None
                char = text[position]
                if char == '"':
                    position += 1
                    break
                if char == "\\" and position + 1 < len(text) and text[position + 1] in '"\\$`':
                    out.append(text[position + 1])
                    position += 2
                    continue
                out.append(char)
                position += 1
        elif char == "\\" and position + 1 < len(text):
            out.append(text[position + 1])
            position += 2
        else:
            out.append(char)
            position += 1
    return "".join(out), position


def _quote(value: str) -> str:
    if value and re.fullmatch(r"[\w@%+=:,./-]+", value, re.ASCII) and not value.startswith("--"):
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _replace(command: Command, **changes: str) -> Command:
    fields = {**command.__dict__, **changes}
    return Command(**fields)


def _verb_list() -> str:
    return ", ".join(f"`{verb}`" for verb in VERBS)


def _flag_list() -> str:
    return ", ".join(f"`--{flag}`" for flag in FLAGS + SWITCHES)


# --- which lines may hold commands ----------------------------------------------------------------

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})(.*)$")


def _candidate_lines(body: str) -> list[tuple[int, str | None]]:
    """(line number, text) per line; text is None for blank lines and code, quotes and comments."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    raw_lines = text.split("\n")
    visible: list[str | None] = []
    fence: str | None = None
    in_html_comment = False
    for line in raw_lines:
        if fence is not None:
            stripped = line.strip()
            if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                fence = None
            visible.append(None)
            continue
        if in_html_comment:
            visible.append(None)
            in_html_comment = _html_comment_open_after(line, start_inside=True)
            continue
        opener = _FENCE.match(line)
        if opener and not (opener.group(1)[0] == "`" and "`" in opener.group(2)):
            fence = opener.group(1)
            visible.append(None)
            continue
        if line.lstrip().startswith(">"):
            visible.append(None)
            continue
        visible.append(line)
        in_html_comment = _html_comment_open_after(line, start_inside=False)
    _hide_lines_inside_code_spans(visible)
    return [(number, line if line and line.strip() else None) for number, line in enumerate(visible, start=1)]


def _html_comment_open_after(line: str, *, start_inside: bool) -> bool:
    inside = start_inside
    position = 0
    while True:
        if inside:
            end = line.find("-->", position)
            if end < 0:
                return True
            inside, position = False, end + 3
        else:
            start = line.find("<!--", position)
            if start < 0:
                return False
            inside, position = True, start + 4


def _hide_lines_inside_code_spans(visible: list[str | None]) -> None:
    """Blank out lines that begin inside a multi-line inline code span (CommonMark backtick matching)."""
    for start, stop in _paragraphs(visible):
        offsets = []
        joined_parts = []
        offset = 0
        for index in range(start, stop):
            offsets.append(offset)
            joined_parts.append(visible[index] or "")
            offset += len(joined_parts[-1]) + 1
        joined = "\n".join(joined_parts)
        spans = list(_code_spans(joined))
        if not spans:
            continue
        for index, line_offset in zip(range(start, stop), offsets, strict=True):
            if any(open_end <= line_offset < close_start for open_end, close_start in spans):
                visible[index] = None


def _paragraphs(visible: list[str | None]) -> Iterator[tuple[int, int]]:
    start = None
    for index, line in enumerate(visible + [None]):
        blank = line is None or not line.strip()
        if blank and start is not None:
            yield start, index
            start = None
        elif not blank and start is None:
            start = index


def _code_spans(text: str) -> Iterator[tuple[int, int]]:
    runs = [(m.start(), m.end()) for m in re.finditer(r"`+", text)]
    index = 0
    while index < len(runs):
        start, end = runs[index]
        length = end - start
        for later in range(index + 1, len(runs)):
            if runs[later][1] - runs[later][0] == length:
                yield end, runs[later][0]
                index = later + 1
                break
        else:
            index += 1
