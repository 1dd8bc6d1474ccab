"""`draftsmith credentials` and `draftsmith keys rotate` as an operator uses them; no value ever printed or logged."""

from __future__ import annotations

import stat

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.credentials import CredentialStore, KeyRing, load_keyring
from app.db import make_engine
from app.logs import configure_logging
from app.settings import load_settings

SECRET = "sk-ant-api03-" + "Q" * 40 + "wxyz"


@pytest.fixture
def operator_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("DRAFTSMITH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("DRAFTSMITH_ENCRYPTION_KEY", raising=False)
    return tmp_path / "data"


@pytest.fixture
def captured_logs():
    """Our JSON log pipeline (scrubber included) written to a buffer; the previous configuration returns after."""
    import io

    import structlog

    saved = structlog.get_config()
    buffer = io.StringIO()
    configure_logging("json", "debug")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=buffer))
    yield buffer
    structlog.configure(**saved)


def invoke(*args: str, input: str | None = None):
    result = CliRunner().invoke(cli, list(args), input=input)
    return result


def test_set_list_delete_and_rotate_never_show_the_value(operator_env, captured_logs):
    outputs = []

    result = invoke("credentials", "set", "--installation", "42", "ANTHROPIC_API_KEY", input=SECRET + "\n")
    assert result.exit_code == 0, result.output
    outputs.append(result.output)
    key_file = operator_env / "encryption.key"
    assert str(key_file.resolve()) in result.output  # says where the new master key lives
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    result = invoke("credentials", "list")
    assert result.exit_code == 0 and "ANTHROPIC_API_KEY" in result.output and "…wxyz" in result.output
    outputs.append(result.output)

    result = invoke("keys", "rotate")
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 1 credential(s)" in result.output
    outputs.append(result.output)

    # Still readable after rotation, through the key file the rotation rewrote.
    settings = load_settings()
    store = CredentialStore(make_engine(settings.effective_database_url), load_keyring(settings))
    assert store.get_env(42, "octo/demo") == {"ANTHROPIC_API_KEY": SECRET}
    assert store.list(42)[0].key_id == store.keyring.current_id != outputs[1].split()[-1]

    result = invoke("credentials", "delete", "--installation", "42", "ANTHROPIC_API_KEY")
    assert result.exit_code == 0
    outputs.append(result.output)

    logs = captured_logs.getvalue()
    assert "credential_set" in logs and "encryption_key_created" in logs  # the logs recorded the actions...
    for text in [*outputs, logs]:
        assert SECRET not in text and SECRET[:-4] not in text  # ...but never the value


def test_value_is_not_accepted_on_the_command_line(operator_env):
    result = invoke("credentials", "set", "--installation", "42", "ANTHROPIC_API_KEY", SECRET)
    assert result.exit_code != 0


def test_rotation_with_a_configured_key_uses_the_first_entry(operator_env, monkeypatch):
    old, new = KeyRing.generate("old"), KeyRing.generate("new")
    monkeypatch.setenv("DRAFTSMITH_ENCRYPTION_KEY", old.serialize())
    assert invoke("credentials", "set", "--installation", "1", "OPENAI_API_KEY", input=SECRET).exit_code == 0

    monkeypatch.setenv("DRAFTSMITH_ENCRYPTION_KEY", f"{new.serialize()},{old.serialize()}")
    result = invoke("keys", "rotate")
    assert result.exit_code == 0 and "under key new" in result.output
    assert not (operator_env / "encryption.key").exists()

    monkeypatch.setenv("DRAFTSMITH_ENCRYPTION_KEY", new.serialize())  # old key retired
    settings = load_settings()
    store = CredentialStore(make_engine(settings.effective_database_url), load_keyring(settings))
    assert store.get_env(1, None) == {"OPENAI_API_KEY": SECRET}


def test_keys_are_set_by_owner_or_repository_name_and_installations_are_listed(operator_env, fakehub, monkeypatch):
    fakehub.create_repo("octo", "demo")
    fakehub.create_repo("octo", "tools")
    fakehub.create_repo("solo", "site")
    for name, value in fakehub.env().items():
        monkeypatch.setenv(name, value)
    octo, solo = fakehub.installation_id("octo/demo"), fakehub.installation_id("solo/site")

    listed = invoke("installations")
    assert listed.exit_code == 0, listed.output
    assert f"{octo}  octo (" in listed.output and "    octo/demo" in listed.output and "    octo/tools" in listed.output
    assert f"{solo}  solo (" in listed.output and "    solo/site" in listed.output

    by_owner = invoke("credentials", "set", "--owner", "octo", "ANTHROPIC_API_KEY", input=SECRET + "\n")
    by_repo = invoke("credentials", "set", "--owner", "solo", "--repo", "site", "OPENAI_API_KEY", input=SECRET + "\n")
    by_full_name = invoke("credentials", "set", "--repo", "octo/tools", "GEMINI_API_KEY", input=SECRET + "\n")
    assert [r.exit_code for r in (by_owner, by_repo, by_full_name)] == [0, 0, 0], by_owner.output + by_repo.output
    settings = load_settings()
    store = CredentialStore(make_engine(settings.effective_database_url), load_keyring(settings))
    assert store.get_env(octo, "octo/demo") == {"ANTHROPIC_API_KEY": SECRET}
    assert store.get_env(octo, "octo/tools") == {"ANTHROPIC_API_KEY": SECRET, "GEMINI_API_KEY": SECRET}
    assert store.get_env(solo, "solo/site") == {"OPENAI_API_KEY": SECRET}

    nowhere = invoke("credentials", "set", "--owner", "nobody", "ANTHROPIC_API_KEY", input=SECRET + "\n")
    assert nowhere.exit_code != 0 and "not installed on nobody" in nowhere.output
    assert invoke("credentials", "set", "--repo", "site", "X_KEY", input="v\n").exit_code != 0
