"""mini-swe-agent adapter: `mini -y --exit-immediately -o traj.json`, result read from the trajectory file."""

from __future__ import annotations

import json

from app.agents.base import (
    CliAgent,
    AgentRequest,
    AgentResult,
    Invocation,
    Usage,
    agent_home,
    config_value,
    provider_env,
    tail,
)

# Installed on a worker or in the sandbox image into its own venv (litellm's pins must not meet ours),
# with `mcp`, which litellm imports for tool calls but mini-swe-agent does not depend on:
#   uv venv /opt/agents/mini-swe-agent && uv pip install --python /opt/agents/mini-swe-agent/bin/python \
#       mini-swe-agent mcp
# then add /opt/agents/mini-swe-agent/bin to DRAFTSMITH_AGENT_PATH.
INSTALL_HINT = ("uv venv /opt/agents/mini-swe-agent && uv pip install --python /opt/agents/mini-swe-agent/bin/python "
                "mini-swe-agent mcp; add /opt/agents/mini-swe-agent/bin to DRAFTSMITH_AGENT_PATH")

# Usage: https://mini-swe-agent.com/latest/usage/mini/ ; the trajectory (`-o`) is JSON with
# info.exit_status ("Submitted" when the agent finished), info.submission (its final output),
# info.model_stats.{instance_cost, api_calls} and the full `messages` list.
# Environment (global config in a private dir, no first-run wizard, no cost-map download):
# https://mini-swe-agent.com/latest/advanced/global_configuration/
DEFAULT_MODEL = "anthropic/claude-sonnet-4-5"
TRAJECTORY = "mini-traj.json"


class MiniSweAgent(CliAgent):
    name = "mini-swe-agent"
    binary = "mini"
    install_hint = INSTALL_HINT
    default_model = DEFAULT_MODEL
    default_key = None

    def prepare(self, request: AgentRequest) -> Invocation:
        model = request.model or DEFAULT_MODEL
        cost_limit = config_value(request.config, "max_cost_usd") or 0  # 0: no limit of its own
        argv = [self.executable(), "-y", "--exit-immediately",
                "-m", model, "-l", str(cost_limit),
                "-o", str(request.artifacts_dir / TRAJECTORY),
                "-t", request.prompt]
        env = {
            **agent_home(request),
            **provider_env(request, self.required_credentials(request.model)),
            "MSWEA_GLOBAL_CONFIG_DIR": str(request.artifacts_dir / "mswea"),
            "MSWEA_CONFIGURED": "true",
            "MSWEA_SILENT_STARTUP": "1",
            # Unknown (self-hosted) models have no price; count tokens instead of failing the run.
            "MSWEA_COST_TRACKING": "ignore_errors",
            # litellm otherwise downloads its price list from GitHub on import.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        # mini has no read-only mode; in plan mode the sandbox binds the workspace read-only.
        return Invocation(argv=argv, env=env, stdin="", cwd=request.workspace,
                          workspace_writable=not request.plan_mode)

    def parse_result(self, request: AgentRequest, exit_code: int, stdout: str, stderr: str) -> AgentResult:
        path = request.artifacts_dir / TRAJECTORY
        try:
            trajectory = json.loads(path.read_text())
        except (OSError, ValueError):
            return AgentResult(False, f"mini exited {exit_code} without a trajectory: {tail(stderr or stdout, 500)}",
                               transcript=(stdout + stderr) or None)
        info = trajectory.get("info") or {}
        stats = info.get("model_stats") or {}
        exit_status = str(info.get("exit_status") or "")
        submission = str(info.get("submission") or "").strip()
        input_tokens, output_tokens = _token_totals(trajectory.get("messages") or [])
        cost = stats.get("instance_cost")
        usage = Usage(input_tokens, output_tokens, float(cost) if cost else (0.0 if cost == 0 else None))
        success = exit_code == 0 and exit_status == "Submitted"
        summary = submission or (f"mini-swe-agent finished: {exit_status}" if success else
                                 f"mini-swe-agent stopped ({exit_status or f'exit {exit_code}'}): {tail(stderr, 500)}")
        return AgentResult(success, summary, usage, transcript=json.dumps(trajectory, indent=1),
                           plan=summary if request.plan_mode and success else None)


def _token_totals(messages: list) -> tuple[int | None, int | None]:
    """Sum the provider's usage block kept with each model reply in the trajectory."""
    prompt = completion = 0
    found = False
    for message in messages:
        if not isinstance(message, dict):
            continue
        extra = message.get("extra") or {}
        response = extra.get("response") if isinstance(extra, dict) else None
        usage = (response or {}).get("usage") if isinstance(response, dict) else None
        if isinstance(usage, dict):
            found = True
            prompt += int(usage.get("prompt_tokens") or 0)
            completion += int(usage.get("completion_tokens") or 0)
    return (prompt, completion) if found else (None, None)
