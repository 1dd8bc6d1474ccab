"""Shared fixtures; each concern's fixtures live in a plugin module under tests/support/."""

pytest_plugins = [
    "tests.support.databases",
    "tests.support.redis",
    "tests.support.fakehub",
    "tests.support.webhooks",
    "tests.support.fake_llm",
    "tests.support.app_server",
]
