"""Every text Draftsmith writes on GitHub (pure): progress comment, check run output, PR body and replies.

Functions take plain values or the sqlmodel `Task`/`Run` (read by attribute only) and return strings, so
they are tested without GitHub. Anything that came from users or agents is passed through `_neutral`,
which keeps it from pinging people or forging our hidden markers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.commands.grammar import FLAGS, VERB_FLAGS, CommandError

MARKER_PREFIX = "<!-- draftsmith:"
# GitHub refuses comment, PR and check-run texts over 65,536 characters; stay well below.
MAX_BODY_CHARS = 60_000
MAX_QUOTED_CHARS = 4_000

STAGES: tuple[tuple[str, str], ...] = (
    ("queued", "Queued"),
    ("workspace", "Setting up workspace"),
    ("agent", "Agent working"),
    ("commit", "Committing changes"),
    ("tests", "Running tests"),
    ("pull_request", "Pull request"),
)
PLAN_STAGES: tuple[tuple[str, str], ...] = (
    ("queued", "Queued"),
    ("workspace", "Setting up workspace"),
    ("agent", "Agent planning"),
    ("plan", "Plan posted"),
)
_TERMINAL_HEADLINES = {
    "succeeded": "✅ Done",
    "failed": "❌ Failed",
    "cancelled": "🚫 Cancelled",
    "timed_out": "⏱️ Timed out",
    "needs_attention": "⚠️ Needs attention",
}
_ACTIVE = {"queued", "running"}


def headline(status: str) -> str:
    """'⏱️ Timed out', '✅ Done'...: how a finished task's state reads everywhere."""
    return _TERMINAL_HEADLINES.get(str(status), str(status))

VERB_HELP: tuple[tuple[str, str], ...] = (
    ("run [--agent NAME] [--model NAME] [--base BRANCH] [--new-pr] [instruction]",
     "start a task; on an issue the issue is the instruction; on a pull request say what to change, and the "
     "commits go on its branch (`--new-pr` opens a new pull request instead)"),
    ("plan [--agent NAME] [--model NAME] [instruction]", "post a plan as a comment without changing code"),
    ("cancel", "stop the running task"),
    ("retry [--agent NAME] [--model NAME]", "run the last task again"),
    ("status", "show the current task"),
    ("help", "show this help"),
)


def _help_verbs(prefix: str) -> str:
    lines = [f"- `{prefix} {usage}`: {what}" for usage, what in VERB_HELP]
    return "\n".join(lines)


def _help_rules(prefix: str, slug: str = "<app>") -> str:
    return (
        f"You can also mention the app at the start of a line: `@{slug} fix the failing test` starts a task "
        f"with that instruction, and `@{slug} cancel` (or another single command word) runs that command.\n"
        f"Commands go at the start of a line, one per line. Flags come before the instruction. Text in code "
        f"blocks, inline code and `>` quotes is never read as a command."
    )


HELP = f"### Draftsmith commands\n\n{_help_verbs('/agent')}\n\n{_help_rules('/agent')}"


# --- markers --------------------------------------------------------------------------------------


def progress_marker(task_id: int | None) -> str:
    """The hidden comment that lets us find our progress comment again."""
    return f"{MARKER_PREFIX}progress task={task_id} -->"


def pr_marker(task_id: int | None) -> str:
    return f"{MARKER_PREFIX}pr task={task_id} -->"


def plan_marker(task_id: int | None) -> str:
    return f"{MARKER_PREFIX}plan task={task_id} -->"


_MARKER = re.compile(r"<!-- draftsmith:(progress|pr|plan) task=(\d+) -->")


def find_marker(body: str | None, kind: str = "progress") -> int | None:
    """The task id in a body written by `progress_comment` (or `pr_body`, `plan_comment`), else None."""
    for match in _MARKER.finditer(body or ""):
        if match.group(1) == kind:
            return int(match.group(2))
    return None


# --- small formatting helpers ---------------------------------------------------------------------


def _neutral(text: str | None, limit: int = MAX_QUOTED_CHARS) -> str:
    """User or agent text made safe to repeat: no @-pings, no fake markers, bounded length."""
    text = (text or "").replace("\r\n", "\n")
    if len(text) > limit:
        text = text[:limit].rstrip() + " …"
    text = re.sub(r"@(?=[A-Za-z0-9])", "@\u200b", text)
    return text.replace("<!--", "&lt;!--")


def _quote(text: str | None) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in _neutral(text).split("\n"))


def _first_line(text: str | None, limit: int = 120) -> str:
    line = (text or "").strip().split("\n", 1)[0]
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _cap(body: str) -> str:
    if len(body) <= MAX_BODY_CHARS:
        return body
    return body[: MAX_BODY_CHARS - 40].rstrip() + "\n\n… (truncated)"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def when(moment: datetime) -> str:
    moment = _utc(moment)
    return f"{moment:%H:%M} UTC on {moment:%Y-%m-%d}"


def _link(text: str, url: str | None) -> str:
    return f"[{text}]({url})" if url else text


def _code(text: str) -> str:
    ticks = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


# --- usage ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    agent_seconds: float | None = None
    total_seconds: float | None = None

    @classmethod
    def of(cls, run: Any) -> Usage:
        if run is None:
            return cls()
        total = None
        started, ended = getattr(run, "started_at", None), getattr(run, "ended_at", None)
        if started is not None and ended is not None:
            total = (_utc(ended) - _utc(started)).total_seconds()
        return cls(getattr(run, "input_tokens", None), getattr(run, "output_tokens", None),
                   getattr(run, "cost_usd", None), getattr(run, "agent_seconds", None), total)

    def lines(self) -> list[str]:
        out = []
        if self.input_tokens is not None or self.output_tokens is not None:
            out.append(f"Tokens: {self.input_tokens or 0:,} in, {self.output_tokens or 0:,} out")
        if self.cost_usd is not None:
            out.append(f"Cost: ${self.cost_usd:.2f}")
        if self.agent_seconds is not None:
            out.append(f"Agent time: {duration(self.agent_seconds)}")
        if self.total_seconds is not None:
            out.append(f"Total time: {duration(self.total_seconds)}")
        return out


# --- the checklist --------------------------------------------------------------------------------


def _stages_for(task: Any) -> tuple[tuple[str, str], ...]:
    return PLAN_STAGES if getattr(task, "mode", "run") == "plan" else STAGES


def _reached_from_facts(task: Any, run: Any) -> dict[str, bool]:
    """For a finished task: which stages demonstrably completed, from what the task and run record."""
    started = run is not None and getattr(run, "started_at", None) is not None
    agent_done = run is not None and getattr(run, "agent_seconds", None) is not None
    # The draft PR exists from the start, so only a run that went all the way has committed through it.
    pr = getattr(task, "pr_number", None) is not None and getattr(task, "status", "") == "succeeded"
    committed = pr
    tests = getattr(run, "tests_passed", None) if run is not None else None
    return {
        "queued": True,
        "workspace": started or agent_done,
        "agent": agent_done,
        "commit": committed,
        "tests": tests is True,
        "pull_request": pr,
        "plan": getattr(task, "status", "") == "succeeded",
    }


def checklist(task: Any, run: Any, stage: str | None = None) -> str:
    """The stage checklist. While active, `stage` is the current one. When finished, a `stage` before the
    last is where the task stopped; otherwise (`pull_request`, `done`, None) the recorded facts decide."""
    stages = _stages_for(task)
    status = getattr(task, "status", "queued")
    names = [name for name, _ in stages]
    stage = stage or getattr(run, "stage", None)  # what the run's row says it reached
    lines = []
    if status in _ACTIVE:
        current = stage if stage in names else ("queued" if status == "queued" else names[1])
        position = names.index(current)
        for index, (name, label) in enumerate(stages):
            if index < position:
                lines.append(f"- [x] {label}")
            elif index == position:
                lines.append(f"- [ ] **{label}** ⏳")
            else:
                lines.append(f"- [ ] {label}")
        return "\n".join(lines)
    reached = _reached_from_facts(task, run)
    tests_passed = getattr(run, "tests_passed", None) if run is not None else None
    failed_at = None if status == "succeeded" else next((n for n in names if not reached[n]), None)
    if status != "succeeded" and stage in names[:-1]:
        # The runner knows where it stopped better than the facts do (an agent that exited 1 still ran).
        failed_at = stage
        reached = {name: index < names.index(stage) or (name == "pull_request" and reached[name])
                   for index, name in enumerate(names)}
    icon = {"cancelled": "🚫", "timed_out": "⏱️"}.get(status, "❌")
    for name, label in stages:
        if name == "tests" and tests_passed is False:
            lines.append(f"- [ ] {label}: failed ❌")
        elif name == "tests" and tests_passed is None and status == "succeeded":
            lines.append(f"- [x] ~~{label}~~ (no test command)")
        elif name == "pull_request" and reached[name]:
            lines.append(f"- [x] {label} #{task.pr_number}")
        elif name == "pull_request" and getattr(task, "pr_number", None) is not None:
            lines.append(f"- [ ] {label} #{task.pr_number} (draft)")
        elif name == "pull_request" and status == "succeeded":
            lines.append(f"- [x] ~~{label}~~ (no changes to propose)")
        elif reached[name]:
            lines.append(f"- [x] {label}")
        elif name == failed_at:
            lines.append(f"- [ ] **{label}** {icon}")
        else:
            lines.append(f"- [ ] {label}")
    return "\n".join(lines)


NO_CHANGES = "no changes"


def owns_pr(task: Any) -> bool:
    """Whether the task's pull request is one Draftsmith opened for it (not the PR it was asked on)."""
    number = getattr(task, "pr_number", None)
    return number is not None and not (getattr(task, "is_pull_request", False) and number == task.issue_number)


def _subject(task: Any, limit: int = 60) -> str:
    return (getattr(task, "title", "") or getattr(task, "instruction", "")
            or f"issue #{task.issue_number}").splitlines()[0][:limit]


def _commit_footer(task: Any, task_url: str | None) -> str:
    ref = f"Task #{task.issue_number}" if not getattr(task, "is_pull_request", False) else f"Follow-up on #{task.issue_number}"
    if task_url:  # from the commit back to the run that made it: its log, checklist and usage
        ref += f"\nSession log: {task_url}"
    return f"{ref}\n\nCo-authored-by: {task.requester} <{task.requester}@users.noreply.github.com>"


def commit_message(task: Any, summary: str | None, task_url: str | None = None) -> str:
    """The message of the commit holding the agent's work: subject, the agent's summary, links, trailer."""
    body = (summary or "").strip()[:4000]
    parts = [_subject(task)] + ([body] if body else []) + [_commit_footer(task, task_url)]
    return "\n\n".join(parts) + "\n"


def start_commit_message(task: Any, task_url: str | None = None) -> str:
    """The empty commit a draft PR starts from, before the agent has changed anything."""
    return "\n\n".join([f"Start work on #{task.issue_number}: {_subject(task, 50)}",
                         "Draftsmith opens the draft pull request with this empty commit; the agent's work follows.",
                         _commit_footer(task, task_url)]) + "\n"


def checkpoint_message(task: Any, files: int, task_url: str | None = None, *, why: str = "") -> str:
    """A snapshot of the workspace pushed while the agent works (or when its run stopped early)."""
    what = f"{files} file{'s' if files != 1 else ''}"
    head = f"Checkpoint of {what} {why or 'while the agent works'}"[:72]
    return "\n\n".join([head, _commit_footer(task, task_url)]) + "\n"


def _details(task: Any, run: Any, task_url: str | None) -> str:
    parts = []
    if getattr(task, "agent", None):
        parts.append(f"agent {_code(task.agent)}")
    if getattr(task, "model", None):
        parts.append(f"model {_code(task.model)}")
    if run is not None and getattr(run, "attempt", 1) and getattr(run, "attempt", 1) > 1:
        parts.append(f"attempt {run.attempt}")
    if task_url:
        parts.append(f"[logs and details]({task_url})")
    return " · ".join(parts)


def _outcome(task: Any, run: Any) -> str:
    status = getattr(task, "status", "queued")
    reason = getattr(task, "status_reason", None) or (getattr(run, "error", None) if run is not None else None)
    if status == "succeeded":
        if getattr(task, "mode", "run") == "plan":
            return "The plan is posted below."
        if getattr(task, "pr_number", None) is not None:
            # A success can still carry a reason (tests failed, so the PR stays a draft): say it here too.
            note = getattr(task, "status_reason", None)
            return f"Opened pull request #{task.pr_number}." + (f" Note: {_neutral(note, 1_000)}." if note else "")
        note = getattr(task, "status_reason", None)
        return ("The agent finished without changing any files, so there is no pull request."
                + (f" ({_neutral(note, 300)})" if note and note != NO_CHANGES else ""))
    if status in _TERMINAL_HEADLINES:
        return _neutral(reason, 2_000) if reason else "No reason was recorded."
    return ""


@dataclass(frozen=True)
class Blocked:
    """A host the sandbox's egress proxy refused, `count` times; `entry` is the network.allow entry that
    would allow it, None when only the operator could."""

    authority: str  # host:port
    count: int
    reason: str
    entry: str | None = None


NOT_ISOLATED = ("⚠️ **Not isolated**: this server runs agents with `DRAFTSMITH_SANDBOX=unsafe-local`, so the agent "
                "could reach the network and the app's own files, database and secrets.")


def network_section(blocked: Sequence[Blocked], isolated: bool = True) -> str:
    """What the sandbox refused, and the config line that would allow it (as GitHub's agent firewall says)."""
    parts = [] if isolated else [NOT_ISOLATED]
    if blocked:
        lines = ["**Blocked network access**: the sandbox refused these connections."]
        lines += [f"- `{b.authority}`{f' ×{b.count}' if b.count > 1 else ''}: {_neutral(b.reason, 200)}"
                  for b in blocked[:20]]
        if len(blocked) > 20:
            lines.append(f"- and {len(blocked) - 20} more (see the run's log)")
        entries = list(dict.fromkeys(b.entry for b in blocked if b.entry))
        if entries:
            listed = ", ".join(f'"{e}"' for e in entries[:10])
            lines.append(f"\nTo allow them, add to `.github/draftsmith.yml` on the default branch: "
                         f"`network: {{allow: [{listed}]}}`")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def progress_comment(
    task: Any, run: Any, stage: str | None = None, *, task_url: str | None = None, prefix: str = "/agent",
    blocked: Sequence[Blocked] = (), isolated: bool = True, ahead: int | None = None,
) -> str:
    """The one progress comment of a task: checklist, current state, and what the user can do next.

    `ahead`: how many queued tasks start before this one, said while it waits in the queue."""
    status = getattr(task, "status", "queued")
    waiting = status == "queued" and stage in (None, "queued")
    if status in _ACTIVE:
        headline = "⏳ Queued" if waiting else "🛠️ Working"
        if waiting and ahead:
            headline += f", {ahead} ahead"
    else:
        headline = _TERMINAL_HEADLINES.get(status, status)
    title = f"### Draftsmith: {headline}"
    parts = [progress_marker(getattr(task, "id", None)), title]
    if getattr(task, "instruction", ""):
        parts.append(_quote(task.instruction))
    if waiting and ahead:
        tasks_word = "task starts" if ahead == 1 else "tasks start"
        parts.append(f"{ahead} queued {tasks_word} before this one; it starts when a worker is free"
                     + (", and its draft pull request opens then."
                        if getattr(task, "mode", "run") == "run" and getattr(task, "pr_number", None) is None
                        else "."))
    parts.append(checklist(task, run, stage))
    if status in _ACTIVE and getattr(task, "pr_number", None) is not None and owns_pr(task):
        parts.append(f"The work shows in draft pull request #{task.pr_number} as the agent goes.")
    outcome = _outcome(task, run)
    if outcome:
        parts.append(outcome)
    network = network_section(blocked, isolated)
    if network:
        parts.append(network)
    details = _details(task, run, task_url)
    if details:
        parts.append(details)
    parts.append(f"<sub>{_hint(task, prefix)}</sub>")
    return _cap("\n\n".join(parts))


def _hint(task: Any, prefix: str) -> str:
    status = getattr(task, "status", "queued")
    if status in _ACTIVE:
        return f"Reply {_code(prefix + ' cancel')} to stop this task, or {_code(prefix + ' status')} for its state."
    if status == "succeeded":
        return f"Reply {_code(prefix + ' run <instruction>')} to ask for more changes."
    return f"Reply {_code(prefix + ' retry')} to try again, or {_code(prefix + ' help')} for all commands."


# --- check run ------------------------------------------------------------------------------------


def check_run_output(task: Any, run: Any, stage: str | None = None, *, blocked: Sequence[Blocked] = (),
                     isolated: bool = True) -> dict[str, str]:
    """`output` for the check run: a title, a Markdown summary, and details in `text`."""
    status = getattr(task, "status", "queued")
    labels = dict(_stages_for(task))
    reason = getattr(task, "status_reason", None) or (getattr(run, "error", None) if run is not None else None)
    if status in _ACTIVE:
        title = "Queued" if status == "queued" and stage in (None, "queued") else labels.get(stage or "", "Working")
    elif status == "succeeded":
        title = (f"Opened pull request #{task.pr_number}" if getattr(task, "pr_number", None) is not None
                 else "Plan posted" if getattr(task, "mode", "run") == "plan" else "No changes")
        if getattr(task, "pr_number", None) is not None and getattr(task, "status_reason", None):
            title += f" ({_first_line(_neutral(task.status_reason), 100)})"
    else:
        head = _TERMINAL_HEADLINES.get(status, status).split(" ", 1)[-1]
        title = f"{head}: {_first_line(_neutral(reason), 100)}" if reason else head
    summary = [f"**{title}**"]
    if status in _TERMINAL_HEADLINES and status != "succeeded" and "\n" in (reason or "").strip():
        summary.append(_neutral(reason, 4_000))  # the title holds one line; a list (files refused...) goes here
    if getattr(task, "instruction", ""):
        summary.append(_quote(task.instruction))
    meta = _details(task, run, None)
    if meta:
        summary.append(meta)
    usage = Usage.of(run).lines()
    if usage:
        summary.append("\n".join(f"- {line}" for line in usage))
    network = network_section(blocked, isolated)
    if network:
        summary.append(network)
    text_parts = [checklist(task, run, stage)]
    tests_passed = getattr(run, "tests_passed", None) if run is not None else None
    if tests_passed is not None:
        text_parts.append(f"Tests: {'passed ✅' if tests_passed else 'failed ❌'}")
    error = getattr(run, "error", None) if run is not None else None
    if error and status not in _ACTIVE:
        text_parts.append("```\n" + _neutral(error, 8_000).replace("```", "`\u200b``") + "\n```")
    return {"title": title[:200], "summary": _cap("\n\n".join(summary)), "text": _cap("\n\n".join(text_parts))}


# --- pull request body ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FileChange:
    path: str
    status: str = "modified"
    additions: int | None = None
    deletions: int | None = None


@dataclass(frozen=True)
class TestResult:
    passed: bool | None
    command: str | None = None
    output: str | None = None


def _section(name: str, content: str) -> str:
    return f"<!-- draftsmith:section {name} -->\n{content}\n<!-- draftsmith:end {name} -->"


def _previous_section(previous: str, name: str) -> str | None:
    match = re.search(
        rf"<!-- draftsmith:section {name} -->\n(.*?)\n<!-- draftsmith:end {name} -->", previous or "", re.DOTALL
    )
    return match.group(1) if match else None


def _files_section(files: Sequence[FileChange | str]) -> str:
    if not files:
        return "**Files changed:** none"
    shown = list(files)[:100]
    lines = [f"**Files changed ({len(files)}):**", ""]
    for item in shown:
        change = item if isinstance(item, FileChange) else FileChange(str(item))
        counts = ""
        if change.additions is not None or change.deletions is not None:
            counts = f" (+{change.additions or 0} −{change.deletions or 0})"
        what = "" if change.status == "modified" else f" ({change.status})"
        lines.append(f"- {_code(change.path)}{what}{counts}")
    if len(files) > len(shown):
        lines.append(f"- … and {len(files) - len(shown)} more")
    return "\n".join(lines)


def _tests_section(result: TestResult | bool | None) -> str:
    if isinstance(result, bool) or result is None:
        result = TestResult(result)
    if result.passed is None:
        return "**Tests:** not run (no `test:` command in `.github/draftsmith.yml`)"
    verdict = "passed ✅" if result.passed else "failed ❌"
    line = f"**Tests:** {verdict}" + (f" ({_code(result.command)})" if result.command else "")
    if result.output and not result.passed:
        tail = _neutral(result.output[-3_000:], 3_000).replace("```", "`\u200b``")
        line += f"\n\n<details><summary>Test output</summary>\n\n```\n{tail}\n```\n</details>"
    return line


def _pr_progress(task: Any, run: Any, stage: str | None) -> str:
    status = getattr(task, "status", "queued")
    if status in _ACTIVE:
        head = ("⏳ **Queued**: the agent starts soon." if status == "queued" and stage in (None, "queued")
                else "🛠️ **Work in progress**: the agent's commits appear here as it works.")
    else:
        head = f"**{_TERMINAL_HEADLINES.get(status, status)}**"
    return f"{head}\n\n{checklist(task, run, stage)}"


def pr_body(
    task: Any,
    run: Any,
    files_changed: Sequence[FileChange | str] | None = None,
    test_result: TestResult | bool | None = None,
    usage: Usage | None = None,
    *,
    summary: str | None = None,
    previous: str = "",
    draft_reason: str | None = None,
    prefix: str = "/agent",
    stage: str | None = None,
    task_url: str | None = None,
) -> str:
    """The draft PR's body. Sections given as None keep what `previous` (the current body) had.

    A follow-up run on the PR keeps the introduction (and its `Closes #N`) of the task that opened it.
    """
    parts = [pr_marker(getattr(task, "id", None))]
    intro = None if owns_pr(task) else _previous_section(previous, "intro")
    if intro is None:
        lines = []
        if not getattr(task, "is_pull_request", False):
            # "Closes" links the issue and closes it when this merges into the default branch.
            lines.append(f"Closes #{task.issue_number}.")
        requester = getattr(task, "requester", "")
        asked = f"Requested by @{requester}" if requester else "Requested"
        lines.append(f"{asked} for #{task.issue_number} and written by Draftsmith "
                     f"({_details(task, None, task_url)}).")
        if getattr(task, "instruction", ""):
            lines.append(_quote(task.instruction))
        intro = "\n\n".join(lines)
    parts.append(_section("intro", intro))
    parts.append(_section("progress", _pr_progress(task, run, stage)))
    if summary is not None:
        summary_text = "**Summary**\n\n" + _neutral(summary, 8_000)
    else:
        summary_text = _previous_section(previous, "summary") or ""
    if summary_text:
        parts.append(_section("summary", summary_text))
    files_text = _files_section(files_changed) if files_changed is not None else _previous_section(previous, "files")
    if files_text:
        parts.append(_section("files", files_text))
    if test_result is not None or getattr(task, "status", "queued") not in _ACTIVE:
        parts.append(_section("tests", _tests_section(test_result)))
    usage_lines = (usage or Usage.of(run)).lines()
    if usage_lines:
        parts.append(_section("usage", "\n".join(f"- {line}" for line in usage_lines)))
    if draft_reason:
        parts.append(f"> [!NOTE]\n> This pull request stays a draft: {_neutral(draft_reason, 1_000)}")
    parts.append(f"<sub>Comment {_code(prefix + ' run <instruction>')} on this pull request to ask for "
                 f"changes. Review the diff before merging: it was written by a coding agent.</sub>")
    return _cap("\n\n".join(parts))


# --- help -----------------------------------------------------------------------------------------

_CONFIG_KEYS = (
    "agent", "model", "runner", "trigger_label", "command_prefix", "required_permission", "allowed_bots",
    "setup", "test", "max_runtime_minutes", "branch_prefix", "instructions_file", "on_busy",
    "checkpoint_seconds", "squash",
)


def _config_value(value: Any) -> str:
    if value is None or value == []:
        return "—"
    if isinstance(value, list):
        return ", ".join(_code(str(item)) for item in value)
    return _code(str(value))


def help_text(
    config: Any, agents: Iterable[tuple[str, bool, str | None]] = (), *, slug: str = "<app>"
) -> str:
    """`/agent help`: commands with the repository's prefix, the agents on this server, the effective config."""
    prefix = getattr(config, "command_prefix", "/agent") or "/agent"
    flags = ", ".join(f"`--{flag}`" for flag in FLAGS)
    parts = [
        "### Draftsmith commands",
        _help_verbs(prefix),
        (f"Flags: {flags} (also `--flag=value`; `--` ends the flags). "
         f"`retry` takes {', '.join(f'`--{f}`' for f in sorted(VERB_FLAGS['retry']))}."),
        _help_rules(prefix, slug),
    ]
    agent_lines = []
    default = getattr(config, "agent", None)
    for name, available, reason in agents:
        mark = "✅" if available else "❌"
        note = f": {_neutral(reason, 200)}" if reason else ""
        chosen = " (default here)" if name == default else ""
        agent_lines.append(f"- {mark} {_code(name)}{chosen}{note}")
    if agent_lines:
        parts += ["#### Agents on this server", "\n".join(agent_lines)]
    rows = ["| key | value |", "| --- | --- |"]
    for key in _CONFIG_KEYS:
        rows.append(f"| `{key}` | {_config_value(getattr(config, key, None))} |")
    parts += ["#### Effective configuration (`.github/draftsmith.yml` on the default branch)", "\n".join(rows)]
    return _cap("\n\n".join(parts))


# --- replies --------------------------------------------------------------------------------------


def command_error_reply(error: CommandError, prefix: str = "/agent") -> str:
    line = f"\n\n{_quote(error.text)}" if error.text else ""
    return (f"I couldn't read that command (line {error.line}): {_neutral(error.message, 500)}.{line}\n\n"
            f"Nothing was started. Reply {_code(prefix + ' help')} to see what I understand.")


def permission_refusal(login: str, required: str) -> str:
    return (f"Sorry @{login}, only people with **{required}** access to this repository (or more) can ask "
            f"Draftsmith to work here, so I won't start anything. A maintainer can ask on your behalf.")


def ci_marker(sha: str, kind: str) -> str:
    """One note per head and kind ("fixed", "handover"), however many suites report completion."""
    return f"{MARKER_PREFIX}ci {kind} sha={sha} -->"


def _check_list(checks: Sequence[Any]) -> str:
    lines = []
    for check in checks:
        title = f": {_neutral(_first_line(check.title))}" if check.title else ""
        link = f"[{_neutral(check.name)}]({check.url})" if check.url else _code(check.name)
        lines.append(f"- {link} ({_neutral(check.app)}, {check.conclusion}){title}")
    return "\n".join(lines)


def ci_fix_instruction(checks: Sequence[Any], *, attempt: int, max_attempts: int, sha: str) -> str:
    """The follow-up task's instruction: what failed, quoted in its progress comment; the logs go to the
    agent's prompt only."""
    names = ", ".join(f"`{check.name}`" for check in checks)
    return (f"The repository's CI failed on {sha[:7]} ({names}). Read the failures below and change the code "
            f"so that these checks pass; do not weaken or skip the checks. Attempt {attempt} of {max_attempts}.")


def ci_handover_comment(checks: Sequence[Any], *, attempts: int, sha: str, prefix: str = "/agent") -> str:
    return "\n\n".join([
        ci_marker(sha, "handover"),
        f"### ❌ CI is still failing after {attempts} fix attempt{'s' if attempts != 1 else ''}",
        f"These checks failed on {sha[:7]}:\n\n{_check_list(checks)}",
        f"Draftsmith stops here and hands over: push a fix yourself, or reply {_code(prefix + ' run <instruction>')} "
        f"with a hint to try again.",
    ])


def ci_fixed_comment(sha: str, attempts: int) -> str:
    return "\n\n".join([
        ci_marker(sha, "fixed"),
        f"### ✅ CI passes on {sha[:7]}",
        f"It failed before; the fix ({attempts} attempt{'s' if attempts != 1 else ''}) made every check pass, "
        f"so this pull request is ready for review.",
    ])


def fork_pr_reply(head_repo: str | None, prefix: str = "/agent") -> str:
    """Asked to work on a pull request whose branch lives in another repository (a fork)."""
    where = f"`{head_repo}`" if head_repo else "a repository that no longer exists"
    return (f"This pull request's branch lives in {where}, and Draftsmith can only push to branches of this "
            f"repository, so nothing was changed. To have the change made in a new pull request from a branch "
            f"here, reply `{prefix} run --new-pr <what to change>`.")


def closed_pr_reply(prefix: str = "/agent") -> str:
    return (f"This pull request is closed, so Draftsmith did not add to it. Reopen it first, or reply "
            f"`{prefix} run --new-pr <what to change>` for a new pull request.")


def written_by_us(pr_body: str | None) -> bool:
    """Whether a PR body is one Draftsmith wrote (it carries the PR marker); a person's PR is left alone."""
    return f"{MARKER_PREFIX}pr " in (pr_body or "")


def busy_reply(task: Any, task_url: str | None, prefix: str = "/agent") -> str:
    what = _link("a task", task_url)
    status = getattr(task, "status", "running") if task is not None else "running"
    return (f"Draftsmith is already working here ({what}, {status.replace('_', ' ')}). Only one task runs per "
            f"issue or pull request: reply {_code(prefix + ' cancel')} to stop it first, then ask again.")


def queued_behind_reply(task: Any, task_url: str | None, prefix: str = "/agent") -> str:
    return (f"Queued: this starts when the current task ({_link('details', task_url)}) finishes. "
            f"Reply {_code(prefix + ' cancel')} to stop the current one sooner.")


def limit_reply(limit: Any, resets_at: datetime | None = None) -> str:
    """`limit` is an app.policy.LimitExceeded."""
    resets_at = resets_at or getattr(limit, "resets_at", None)
    kind = getattr(limit, "kind", "")
    amount = getattr(limit, "limit", "")
    if kind == "cost":
        what = f"its daily spending cap of ${float(amount):.2f}"
    else:
        what = f"its limit of {int(amount)} tasks a day"
    reset = f" The limit resets at {when(resets_at)}." if resets_at else ""
    return f"This installation has reached {what}, so nothing was started.{reset} Ask again after that."


def config_error_comment(errors: Sequence[Any], path: str = ".github/draftsmith.yml") -> str:
    """One comment listing every problem in the config file; the defaults apply for the bad keys."""
    lines = []
    for error in errors:
        where = getattr(error, "path", None) or path
        line = getattr(error, "line", None)
        location = f"{where}, line {line}" if line else where
        lines.append(f"- {_code(location)}: {_neutral(getattr(error, 'message', str(error)), 500)}")
    if any(getattr(error, "blocking", False) for error in errors):
        return (f"⚠️ Draftsmith did not start: it could not use {_code(path)}, and guessing which agent to "
                f"run, where, or for whom is not safe. Fix these problems on the default branch, then ask "
                f"again.\n\n" + "\n".join(lines))
    return (f"⚠️ Draftsmith found problems in {_code(path)}. The defaults apply for these keys; "
            f"everything else in the file still applies.\n\n" + "\n".join(lines))


def no_changes_comment(task: Any, summary: str | None = None, prefix: str = "/agent", *, closing: bool = False) -> str:
    parts = ["The agent finished without changing any files, so this draft pull request is closed and its "
             "branch deleted." if closing else "The agent finished without changing any files."]
    if summary:
        parts.append("What it said:\n\n" + _quote(summary))
    parts.append(f"Reply {_code(prefix + ' run <instruction>')} with more detail to try again.")
    return _cap("\n\n".join(parts))


def plan_comment(plan_text: str, prefix: str = "/agent", task_id: int | None = None) -> str:
    parts = [plan_marker(task_id)] if task_id is not None else []
    parts += [
        "### Draftsmith: proposed plan",
        _neutral(plan_text, 50_000) or "(the agent returned an empty plan)",
        (f"<sub>Reply {_code(prefix + ' run')} to carry out this plan, or "
         f"{_code(prefix + ' plan <instruction>')} to revise it.</sub>"),
    ]
    return _cap("\n\n".join(parts))


def status_reply(task: Any, run: Any, task_url: str | None = None, prefix: str = "/agent",
                 ahead: int | None = None) -> str:
    """`ahead`: queued tasks that start before this one, while it waits."""
    if task is None:
        return (f"No Draftsmith task on this yet. Reply {_code(prefix + ' run')} to start one, "
                f"or {_code(prefix + ' help')} for all commands.")
    status = getattr(task, "status", "queued")
    headline = _TERMINAL_HEADLINES.get(status, "⏳ Queued" if status == "queued" else "🛠️ Working")
    if status == "queued" and ahead:
        headline += f", {ahead} ahead"
    parts = [f"**Draftsmith task {_link('#' + str(task.id), task_url)}: {headline}**", checklist(task, run)]
    outcome = _outcome(task, run)
    if outcome:
        parts.append(outcome)
    usage = Usage.of(run).lines()
    if usage:
        parts.append("\n".join(f"- {line}" for line in usage))
    parts.append(f"<sub>{_hint(task, prefix)}</sub>")
    return "\n\n".join(parts)


def nothing_to_cancel(prefix: str = "/agent") -> str:
    return f"There is no running Draftsmith task here to cancel. Reply {_code(prefix + ' status')} to see the last one."


def unknown_agent_reply(name: str, known: Sequence[str], *, asked: bool, source: str = ".github/draftsmith.yml",
                        prefix: str = "/agent") -> str:
    """An agent name nobody can run: say where it came from and which names work. Nothing was started."""
    where = f"asked for with {_code('--agent')}" if asked else f"named by {_code('agent:')} in {_code(source)}"
    names = ", ".join(_code(n) for n in known)
    fix = (f"Ask again with one of them, e.g. {_code(prefix + ' run --agent ' + known[0])}." if asked else
           f"Set {_code('agent:')} to one of them on the default branch, or pick one with "
           f"{_code(prefix + ' run --agent NAME')}.")
    return (f"Draftsmith has no agent called {_code(_neutral(name, 60))} ({where}), so nothing was started. "
            f"Known agents: {names}. {fix}")


def nothing_to_retry(prefix: str = "/agent") -> str:
    return (f"There is no earlier Draftsmith task here to retry. Reply {_code(prefix + ' run')} "
            f"to start one.")

