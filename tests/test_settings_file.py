"""The data dir's App settings file (what /setup writes): private from its first byte, read beneath .env and the environment."""

from __future__ import annotations

import stat

import pytest

from app.fakehub.hub import generate_private_key
from app.settings import APP_SETTINGS_FILE, load_settings, write_app_settings


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_PRIVATE_KEY_PATH", "GITHUB_WEBHOOK_SECRET",
                 "GITHUB_CLIENT_ID", "GITHUB_CLIENT_SECRET", "GITHUB_API_URL", "DRAFTSMITH_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_the_written_file_is_private_and_gives_back_every_value(here):
    pem = generate_private_key().decode()
    path = here / ".draftsmith" / APP_SETTINGS_FILE

    write_app_settings(path, {"GITHUB_APP_ID": "42", "GITHUB_PRIVATE_KEY": pem, "GITHUB_WEBHOOK_SECRET": 'a"b\\c',
                              "GITHUB_CLIENT_ID": "Iv23li1", "GITHUB_CLIENT_SECRET": "shh"}, "written by a test")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [APP_SETTINGS_FILE]  # no temporary file left
    settings = load_settings()
    assert settings.github_app_id == 42
    assert settings.private_key_pem() == pem
    assert settings.github_webhook_secret.get_secret_value() == 'a"b\\c'
    assert settings.github_client_id == "Iv23li1" and settings.github_client_secret.get_secret_value() == "shh"
    assert settings.missing_github_settings() == []


def test_an_existing_file_is_never_replaced(here):
    path = here / APP_SETTINGS_FILE
    write_app_settings(path, {"GITHUB_APP_ID": "1"})
    with pytest.raises(FileExistsError):
        write_app_settings(path, {"GITHUB_APP_ID": "2"})
    assert path.read_text().endswith('GITHUB_APP_ID="1"\n')


def test_dotenv_and_the_environment_win_over_the_file(here, monkeypatch):
    write_app_settings(here / ".draftsmith" / APP_SETTINGS_FILE,
                       {"GITHUB_APP_ID": "1", "GITHUB_CLIENT_ID": "from-file", "GITHUB_CLIENT_SECRET": "file"})
    (here / ".env").write_text("GITHUB_CLIENT_ID=from-dotenv\nGITHUB_CLIENT_SECRET=dotenv\n")
    monkeypatch.setenv("GITHUB_CLIENT_SECRET", "environment")

    settings = load_settings()

    assert settings.github_app_id == 1
    assert settings.github_client_id == "from-dotenv"
    assert settings.github_client_secret.get_secret_value() == "environment"


def test_the_file_is_read_from_the_data_dir_dotenv_names(here):
    (here / ".env").write_text(f"DRAFTSMITH_DATA_DIR={here / 'elsewhere'}\n")
    write_app_settings(here / "elsewhere" / APP_SETTINGS_FILE, {"GITHUB_APP_ID": "7"})
    assert load_settings().github_app_id == 7
