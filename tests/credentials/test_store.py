"""Encrypted credential storage on SQLite and PostgreSQL: round trip, scoping, tampering, rotation."""

from __future__ import annotations

import base64
import os

import pytest
from sqlmodel import select

from app.credentials import CredentialError, CredentialStore, KeyRing
from app.db import session_scope
from app.models import Credential

ANTHROPIC = "sk-ant-api03-" + "A1b2C3d4E5f6G7h8I9j0" * 3
OPENAI = "sk-proj-" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3" * 2


@pytest.fixture
def store(engine):
    return CredentialStore(engine, KeyRing.generate("first"))


def _row(engine, name: str) -> Credential:
    with session_scope(engine) as session:
        return session.exec(select(Credential).where(Credential.name == name)).one()


def _update(engine, row_name: str, **values) -> None:
    with session_scope(engine) as session:
        row = session.exec(select(Credential).where(Credential.name == row_name)).one()
        for key, value in values.items():
            setattr(row, key, value)
        session.add(row)


def test_stored_value_round_trips_and_is_not_kept_in_clear(store, engine):
    store.set(42, "ANTHROPIC_API_KEY", ANTHROPIC)

    assert store.get_env(42, "octo/demo") == {"ANTHROPIC_API_KEY": ANTHROPIC}
    row = _row(engine, "ANTHROPIC_API_KEY")
    assert ANTHROPIC.encode() not in row.ciphertext
    assert len(row.nonce) == 12 and row.key_id == "first"


def test_each_value_gets_its_own_nonce(store, engine):
    store.set(42, "ANTHROPIC_API_KEY", ANTHROPIC)
    store.set(42, "OTHER_KEY", ANTHROPIC)
    assert _row(engine, "ANTHROPIC_API_KEY").nonce != _row(engine, "OTHER_KEY").nonce
    assert _row(engine, "ANTHROPIC_API_KEY").ciphertext != _row(engine, "OTHER_KEY").ciphertext


def test_repository_value_overrides_installation_value_only_in_that_repository(store):
    store.set(42, "OPENAI_API_KEY", OPENAI)
    store.set(42, "OPENAI_API_KEY", "sk-repo-specific-value-123456", repository="Octo/Special")

    assert store.get_env(42, "octo/special")["OPENAI_API_KEY"] == "sk-repo-specific-value-123456"
    assert store.get_env(42, "octo/other")["OPENAI_API_KEY"] == OPENAI


def test_one_installations_keys_are_never_returned_for_another(store):
    store.set(42, "ANTHROPIC_API_KEY", ANTHROPIC)
    store.set(42, "OPENAI_API_KEY", OPENAI, repository="octo/demo")

    assert store.get_env(7, "octo/demo") == {}
    assert store.list(7) == []


def test_setting_again_replaces_the_value(store):
    store.set(42, "OPENAI_API_KEY", OPENAI)
    store.set(42, "OPENAI_API_KEY", "sk-newer-value-abcdefgh")
    assert store.get_env(42, None) == {"OPENAI_API_KEY": "sk-newer-value-abcdefgh"}
    assert [c.last4 for c in store.list(42)] == ["efgh"]


def test_list_shows_only_the_last_four_characters(store):
    store.set(42, "ANTHROPIC_API_KEY", ANTHROPIC)
    [info] = store.list(42)
    assert info.last4 == ANTHROPIC[-4:]
    assert ANTHROPIC not in repr(info) and ANTHROPIC[:-4] not in repr(info)


def test_delete_removes_only_the_named_scope(store):
    store.set(42, "OPENAI_API_KEY", OPENAI)
    store.set(42, "OPENAI_API_KEY", "sk-repo-specific-value-123456", repository="octo/demo")

    assert store.delete(42, "OPENAI_API_KEY", repository="octo/demo")
    assert store.get_env(42, "octo/demo") == {"OPENAI_API_KEY": OPENAI}
    assert not store.delete(42, "OPENAI_API_KEY", repository="octo/demo")


@pytest.mark.parametrize("field", ["ciphertext", "nonce"])
def test_a_changed_byte_fails_decryption(store, engine, field):
    store.set(42, "ANTHROPIC_API_KEY", ANTHROPIC)
    original = getattr(_row(engine, "ANTHROPIC_API_KEY"), field)
    flipped = bytes([original[0] ^ 0x01]) + original[1:]
    _update(engine, "ANTHROPIC_API_KEY", **{field: flipped})

    with pytest.raises(CredentialError, match="integrity") as error:
        store.get_env(42, None)
    assert ANTHROPIC not in str(error.value)


@pytest.mark.parametrize("change", [{"installation_id": 7}, {"repository": "octo/evil"}, {"name": "OPENAI_API_KEY"}])
def test_ciphertext_moved_to_another_row_scope_fails(store, engine, change):
    # The associated data binds each ciphertext to its installation, repository and name.
    store.set(42, "ANTHROPIC_API_KEY", ANTHROPIC)
    _update(engine, "ANTHROPIC_API_KEY", **change)

    installation = change.get("installation_id", 42)
    with pytest.raises(CredentialError):
        store.get_env(installation, change.get("repository"))


def test_rotation_re_encrypts_every_row_under_the_new_key(store, engine):
    store.set(42, "ANTHROPIC_API_KEY", ANTHROPIC)
    store.set(43, "OPENAI_API_KEY", OPENAI, repository="octo/demo")
    before = _row(engine, "ANTHROPIC_API_KEY").ciphertext

    assert store.rotate(KeyRing.generate("second")) == 2

    assert {_row(engine, n).key_id for n in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")} == {"second"}
    assert _row(engine, "ANTHROPIC_API_KEY").ciphertext != before
    # Readable with the new key alone: the old one can be retired.
    fresh = CredentialStore(engine, KeyRing({"second": store.keyring.keys["second"]}, "second"))
    assert fresh.get_env(42, None) == {"ANTHROPIC_API_KEY": ANTHROPIC}
    assert fresh.get_env(43, "octo/demo") == {"OPENAI_API_KEY": OPENAI}
    assert store.rotate(KeyRing({"second": store.keyring.keys["second"]}, "second")) == 0


def test_interrupted_rotation_leaves_every_row_readable_and_resumes(store, engine):
    old = store.keyring
    for i in range(3):
        store.set(42, f"KEY_{i}", f"sk-value-number-{i}-abcdefgh")
    new = KeyRing.generate("second")
    # Simulate a crash after the first row: re-encrypt only that one by hand.
    partial = CredentialStore(engine, old.with_current(new))
    with session_scope(engine) as session:
        first_id = session.exec(select(Credential.id).order_by(Credential.id)).first()
    from app.credentials import encrypt

    with session_scope(engine) as session:
        row = session.get(Credential, first_id)
        row.key_id, row.nonce, row.ciphertext = encrypt(partial.keyring, row.installation_id, row.repository,
                                                        row.name, "sk-value-number-0-abcdefgh")
        session.add(row)

    assert partial.get_env(42, None) == {f"KEY_{i}": f"sk-value-number-{i}-abcdefgh" for i in range(3)}
    assert partial.rotate(new) == 2  # the already-rotated row is skipped


def test_a_row_under_an_unknown_key_names_the_key_not_the_value(store, engine):
    store.set(42, "ANTHROPIC_API_KEY", ANTHROPIC)
    stranger = CredentialStore(engine, KeyRing.generate("other"))
    with pytest.raises(CredentialError, match="'first'"):
        stranger.get_env(42, None)


def test_names_must_be_environment_variable_names(store):
    with pytest.raises(CredentialError):
        store.set(42, "lower-case name", "sk-whatever-12345678")


def test_keyring_parses_ids_and_bare_keys():
    a, b = base64.b64encode(os.urandom(32)).decode(), base64.b64encode(os.urandom(32)).decode()
    ring = KeyRing.parse(f"new:{a}, old:{b}")
    assert ring.current_id == "new" and set(ring.keys) == {"new", "old"}
    bare = KeyRing.parse(b)
    assert bare.current_id.startswith("k") and KeyRing.parse(bare.serialize()).keys == bare.keys
    assert a not in repr(ring)
    with pytest.raises(CredentialError):
        KeyRing.parse(base64.b64encode(os.urandom(16)).decode())


def test_runs_that_start_together_on_a_fresh_data_dir_share_one_encryption_key(tmp_path):
    # Given no key file yet, and a burst's first runs each loading the key ring at the same moment
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from app.credentials import key_file_path, load_keyring
    from app.settings import Settings

    settings = Settings(DRAFTSMITH_DATA_DIR=str(tmp_path / "data"))
    start = threading.Barrier(8)

    def load():
        start.wait()
        return load_keyring(settings, announce=lambda _: None)

    # When they all do, then none fails and all hold the key that is on disk
    with ThreadPoolExecutor(8) as pool:
        rings = list(pool.map(lambda _: load(), range(8)))
    on_disk = KeyRing.parse(key_file_path(settings.data_dir).read_text())
    assert {ring.serialize() for ring in rings} == {on_disk.serialize()}
    assert [p.name for p in key_file_path(settings.data_dir).parent.iterdir()] == ["encryption.key"]
