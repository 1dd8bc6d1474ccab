"""Shared fixtures; each concern's fixtures live in a plugin module under tests/support/."""

pytest_plugins = [
    "tests.support.databases",
    "tests.support.redis",
    "tests.support.fakehub",
    "tests.support.webhooks",
    "tests.support.model_server",
    "tests.support.agent_clis",
    "tests.support.app_server",
]
