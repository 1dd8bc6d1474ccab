"""Provider keys at rest: AES-256-GCM per value, a rotatable key ring, and the store over `credentials`."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import or_
from sqlalchemy.engine import Engine
from sqlmodel import select

from app.db import session_scope
from app.logs import get_logger
from app.models import Credential, utcnow

KEY_FILE_NAME = "encryption.key"
_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class CredentialError(Exception):
    """A value could not be stored or read; messages never contain the value or a key."""


@dataclass(frozen=True)
class KeyRing:
    """Master keys by id; `current_id` encrypts, every key in the ring decrypts (so rotation can resume)."""

    keys: dict[str, bytes]
    current_id: str

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        """`base64key` or `id:base64key,id2:base64key2,...`; the first entry is the current key."""
        keys: dict[str, bytes] = {}
        current = None
        for entry in (e.strip() for e in spec.split(",")):
            if not entry:
                continue
            key_id, _, encoded = entry.rpartition(":")
            try:
                key = base64.b64decode(encoded, validate=True)
            except ValueError:
                raise CredentialError("an encryption key entry is not valid base64") from None
            if len(key) != 32:
                raise CredentialError(f"encryption keys must be 32 bytes (AES-256), got {len(key)}")
            key_id = key_id or fingerprint(key)
            if not _KEY_ID.match(key_id):
                raise CredentialError(f"key id {key_id!r} may hold only letters, digits, '.', '_' and '-'")
            keys.setdefault(key_id, key)
            current = current or key_id
        if current is None:
            raise CredentialError("no encryption key given")
        return cls(keys, current)

    @classmethod
    def generate(cls, key_id: str | None = None) -> KeyRing:
        key = AESGCM.generate_key(bit_length=256)
        key_id = key_id or fingerprint(key)
        return cls({key_id: key}, key_id)

    def with_current(self, newer: KeyRing) -> KeyRing:
        """`newer`'s current key in front, keeping every key of both rings for decryption."""
        return KeyRing({**newer.keys, **{k: v for k, v in self.keys.items() if k not in newer.keys}}, newer.current_id)

    def serialize(self) -> str:
        order = [self.current_id] + [k for k in self.keys if k != self.current_id]
        return ",".join(f"{k}:{base64.b64encode(self.keys[k]).decode()}" for k in order)

    def __repr__(self) -> str:  # never print key material
        return f"KeyRing(current={self.current_id!r}, ids={list(self.keys)!r})"


def fingerprint(key: bytes) -> str:
    return "k" + hashlib.sha256(key).hexdigest()[:10]


def key_file_path(data_dir: Path) -> Path:
    return data_dir / KEY_FILE_NAME


def load_keyring(settings, announce: Callable[[str], None] | None = None) -> KeyRing:
    """From DRAFTSMITH_ENCRYPTION_KEY, else the key file in data_dir, created (mode 0600) on first run."""
    if settings.encryption_key is not None and settings.encryption_key.get_secret_value().strip():
        return KeyRing.parse(settings.encryption_key.get_secret_value())
    path = key_file_path(Path(settings.data_dir))
    if path.exists():
        return KeyRing.parse(path.read_text())
    ring = KeyRing.generate()
    if not _create_key_file(path, ring):
        # Another thread or process (the first runs of a burst start together) made it first: use its key,
        # or what one of us encrypts the other cannot read.
        return KeyRing.parse(path.read_text())
    message = (f"Created a new encryption key for stored credentials at {path.resolve()} (mode 0600). Back it up: "
               f"without it stored provider keys cannot be read. Set DRAFTSMITH_ENCRYPTION_KEY to manage it yourself.")
    (announce or (lambda text: print(text, file=sys.stderr)))(message)
    get_logger().warning("encryption_key_created", path=str(path.resolve()))
    return ring


def _write_temp(path: Path, ring: KeyRing) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique per thread too: worker threads of one process share the pid.
    temp = path.with_name(f"{path.name}.tmp{os.getpid()}.{threading.get_ident()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (ring.serialize() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(temp, 0o600)
    return temp


def write_key_file(path: Path, ring: KeyRing) -> None:
    """Write atomically with 0600 from the start: the key is never readable by others, even briefly."""
    os.replace(_write_temp(path, ring), path)


def _create_key_file(path: Path, ring: KeyRing) -> bool:
    """Like write_key_file, but only if there is none yet (a hard link never replaces); False if there was."""
    temp = _write_temp(path, ring)
    try:
        os.link(temp, path)
        return True
    except FileExistsError:
        return False
    finally:
        temp.unlink()


def _normalise_repo(repository: str | None) -> str | None:
    # GitHub repository names are case-insensitive.
    return repository.strip().lower() if repository else None


def associated_data(installation_id: int, repository: str | None, name: str) -> bytes:
    """Binds a ciphertext to its row: copied into another installation, repo or name, it fails to decrypt."""
    return f"draftsmith/credential/v1\x00{installation_id}\x00{repository or ''}\x00{name}".encode()


def encrypt(ring: KeyRing, installation_id: int, repository: str | None, name: str, value: str) -> tuple[str, bytes, bytes]:
    nonce = os.urandom(12)  # 96-bit random nonce per value, as GCM expects
    ciphertext = AESGCM(ring.keys[ring.current_id]).encrypt(
        nonce, value.encode(), associated_data(installation_id, repository, name)
    )
    return ring.current_id, nonce, ciphertext


def decrypt(ring: KeyRing, row: Credential) -> str:
    key = ring.keys.get(row.key_id)
    if key is None:
        raise CredentialError(f"credential {row.name} is encrypted with key {row.key_id!r}, which is not in the "
                              f"key ring; add it back to DRAFTSMITH_ENCRYPTION_KEY")
    try:
        plain = AESGCM(key).decrypt(row.nonce, row.ciphertext,
                                    associated_data(row.installation_id, row.repository, row.name))
    except InvalidTag:
        raise CredentialError(f"credential {row.name} of installation {row.installation_id} failed its integrity "
                              f"check (tampered, or moved between installations)") from None
    return plain.decode()


@dataclass(frozen=True)
class CredentialInfo:
    installation_id: int
    repository: str | None
    name: str
    last4: str
    key_id: str
    updated_at: datetime


class CredentialStore:
    """Encrypted provider keys per installation, optionally per repository (which wins over the default)."""

    def __init__(self, engine: Engine, keyring: KeyRing) -> None:
        self.engine = engine
        self.keyring = keyring
        self.log = get_logger(component="credentials")

    def set(self, installation_id: int, name: str, value: str, repository: str | None = None) -> None:
        if not _NAME.match(name):
            raise CredentialError(f"{name!r} is not an environment variable name (A-Z, 0-9, _)")
        if not value:
            raise CredentialError("refusing to store an empty value")
        repository = _normalise_repo(repository)
        key_id, nonce, ciphertext = encrypt(self.keyring, installation_id, repository, name, value)
        with session_scope(self.engine) as session:
            row = session.exec(self._scope(installation_id, repository, name)).first()
            if row is None:
                row = Credential(installation_id=installation_id, repository=repository, name=name,
                                 key_id=key_id, nonce=nonce, ciphertext=ciphertext, last4="")
            row.key_id, row.nonce, row.ciphertext = key_id, nonce, ciphertext
            row.last4 = value[-4:] if len(value) >= 12 else ""  # short values would be mostly revealed
            row.updated_at = utcnow()
            session.add(row)
        self.log.info("credential_set", installation_id=installation_id, repository=repository, name=name)

    def get_env(self, installation_id: int, repository: str | None) -> dict[str, str]:
        """Every key for a run in `repository`: installation-wide ones, overridden by repository ones."""
        repository = _normalise_repo(repository)
        with session_scope(self.engine) as session:
            rows = session.exec(
                select(Credential).where(
                    Credential.installation_id == installation_id,
                    or_(Credential.repository.is_(None), Credential.repository == repository),
                )
            ).all()
        env: dict[str, str] = {}
        for row in sorted(rows, key=lambda r: r.repository is not None):  # repository rows last: they win
            env[row.name] = decrypt(self.keyring, row)
        return env

    def list(self, installation_id: int | None = None, repository: str | None = None) -> list[CredentialInfo]:
        query = select(Credential)
        if installation_id is not None:
            query = query.where(Credential.installation_id == installation_id)
        if repository is not None:
            query = query.where(Credential.repository == _normalise_repo(repository))
        with session_scope(self.engine) as session:
            rows = session.exec(query).all()
        rows = sorted(rows, key=lambda r: (r.installation_id, r.repository or "", r.name))
        return [CredentialInfo(r.installation_id, r.repository, r.name, r.last4, r.key_id, r.updated_at) for r in rows]

    def delete(self, installation_id: int, name: str, repository: str | None = None) -> bool:
        with session_scope(self.engine) as session:
            row = session.exec(self._scope(installation_id, _normalise_repo(repository), name)).first()
            if row is None:
                return False
            session.delete(row)
        self.log.info("credential_deleted", installation_id=installation_id, repository=repository, name=name)
        return True

    def rotate(self, new_keyring: KeyRing) -> int:
        """Re-encrypt every row under `new_keyring`'s current key; returns how many rows changed.

        Each row is its own transaction and old keys stay in the ring, so a rotation cut short leaves every
        row readable and running it again finishes the job.
        """
        ring = self.keyring.with_current(new_keyring)
        self.keyring = ring
        with session_scope(self.engine) as session:
            ids = session.exec(select(Credential.id).where(Credential.key_id != ring.current_id)).all()
        rotated = 0
        for row_id in ids:
            with session_scope(self.engine) as session:
                row = session.exec(select(Credential).where(Credential.id == row_id).with_for_update()).first()
                if row is None or row.key_id == ring.current_id:
                    continue
                value = decrypt(ring, row)
                row.key_id, row.nonce, row.ciphertext = encrypt(ring, row.installation_id, row.repository,
                                                                row.name, value)
                row.updated_at = utcnow()
                session.add(row)
            rotated += 1
        self.log.info("credentials_rotated", rows=rotated, key_id=ring.current_id)
        return rotated

    @staticmethod
    def _scope(installation_id: int, repository: str | None, name: str):
        repo_clause = Credential.repository.is_(None) if repository is None else Credential.repository == repository
        return select(Credential).where(Credential.installation_id == installation_id, repo_clause,
                                        Credential.name == name)
