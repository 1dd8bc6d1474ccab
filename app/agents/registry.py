"""All agent adapters by name: get_agent("codex"), all_agents()."""

from __future__ import annotations

from app.agents.aider import Aider
from app.agents.base import Agent
from app.agents.claude_code import ClaudeCode
from app.agents.codex import Codex
from app.agents.command import CommandAgent
from app.agents.gemini import Gemini
from app.agents.mini_swe_agent import MiniSweAgent
from app.agents.opencode import OpenCode

_AGENTS: dict[str, Agent] = {
    agent.name: agent
    for agent in (ClaudeCode(), Codex(), Aider(), MiniSweAgent(), Gemini(), OpenCode(), CommandAgent())
}


class UnknownAgent(KeyError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown agent {self.name!r}; choose one of: {', '.join(_AGENTS)}"


def get_agent(name: str) -> Agent:
    try:
        return _AGENTS[name.strip().lower()]
    except KeyError:
        raise UnknownAgent(name) from None


def is_known(name: str) -> bool:
    return name.strip().lower() in _AGENTS


def names() -> list[str]:
    return list(_AGENTS)


def all_agents() -> list[Agent]:
    return list(_AGENTS.values())
