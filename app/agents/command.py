"""The `command` agent: bring your own CLI, a shell line from the repository config run with `sh -c`."""

from __future__ import annotations

import shlex

from app.agents.base import (
    AgentRequest,
    AgentResult,
    Availability,
    Invocation,
    Usage,
    agent_home,
    config_value,
    tail,
)

# Nothing to install: `sh` is in every sandbox image. The repository's `.github/draftsmith.yml` holds
#   agent: command
#   command: "my-agent --task-file {prompt_file} --dir {workspace}"
# {prompt_file} and {workspace} are replaced by shell-quoted absolute paths. Success is exit code 0.
PROMPT_FILE = "prompt.md"
INSTALL_HINT = "built in: set `agent: command` and `command: ...` in .github/draftsmith.yml"


class CommandConfigError(ValueError):
    """The repository chose the command agent but gave no usable `command`."""


class CommandAgent:
    name = "command"

    def required_credentials(self, model: str | None) -> list[str]:
        # We cannot know what a user's own CLI reads; it gets every key stored for the repository.
        return []

    def availability(self) -> Availability:
        return Availability(True, "built in (runs the repository's `command` with sh -c)", INSTALL_HINT)

    def prepare(self, request: AgentRequest) -> Invocation:
        template = config_value(request.config, "command")
        if not isinstance(template, str) or not template.strip():
            raise CommandConfigError("agent `command` needs a `command:` shell line in .github/draftsmith.yml")
        prompt_file = request.artifacts_dir / PROMPT_FILE
        line = template.replace("{prompt_file}", shlex.quote(str(prompt_file))).replace(
            "{workspace}", shlex.quote(str(request.workspace))
        )
        env = {**agent_home(request), **request.credentials,
               "DRAFTSMITH_PROMPT_FILE": str(prompt_file), "DRAFTSMITH_WORKSPACE": str(request.workspace),
               "DRAFTSMITH_PLAN_MODE": "1" if request.plan_mode else "0"}
        if request.model:
            env["DRAFTSMITH_MODEL"] = request.model
        return Invocation(argv=["sh", "-c", line], env=env, files={PROMPT_FILE: request.prompt}, stdin="",
                          cwd=request.workspace, workspace_writable=not request.plan_mode)

    def parse_result(self, request: AgentRequest, exit_code: int, stdout: str, stderr: str) -> AgentResult:
        success = exit_code == 0
        output = tail(stdout, 3000)
        summary = output if success else f"command exited {exit_code}: {tail(stderr or stdout, 1500)}"
        return AgentResult(success, summary, Usage(), transcript=(stdout + ("\n" + stderr if stderr else "")) or None,
                           plan=stdout.strip() if request.plan_mode and success else None)
