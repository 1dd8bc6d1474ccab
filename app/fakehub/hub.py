"""The fake GitHub's operations shared by its REST API, admin API and test fixture (app, users, repositories)."""

from __future__ import annotations

import random
import secrets
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.fakehub import git
from app.fakehub.state import App, FakeHubState, Installation, Repository, User

ROLE_NAMES = {"read", "triage", "write", "maintain", "admin"}


def generate_private_key() -> bytes:
    """A fresh RSA key in PEM, as GitHub hands out when an App is registered."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


class FakeHub:
    """State plus the operations that create it. `git_root` holds one bare repository per fake repository."""

    def __init__(
        self,
        *,
        app_id: int | None = None,
        app_slug: str = "draftsmith-dev",
        app_owner: str = "draftsmith-dev-owner",
        private_key_pem: bytes | None = None,
        webhook_secret: str | None = None,
        webhook_url: str | None = None,
        git_root: Path | None = None,
    ) -> None:
        self.state = FakeHubState()
        self.validate_responses = False
        self.private_key_pem = private_key_pem or generate_private_key()
        public = serialization.load_pem_private_key(self.private_key_pem, password=None).public_key()
        owner = self.state.user(app_owner)
        bot = User(id=self.state.next_id(), login=f"{app_slug}[bot]", type="Bot")
        self.state.users[bot.login] = bot
        self.state.app = App(
            id=app_id or random.randrange(100_000, 1_000_000), slug=app_slug, name=app_slug.replace("-", " ").title(), owner=owner, bot=bot,
            public_key_pem=public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
            webhook_secret=webhook_secret or secrets.token_hex(20), client_id=f"Iv1.{secrets.token_hex(8)}",
        )
        self.state.webhook_url = webhook_url
        self._tmp = None
        if git_root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fakehub-git-")
            git_root = Path(self._tmp.name)
        self.git_root = git_root

    @property
    def app(self) -> App:
        assert self.state.app is not None
        return self.state.app

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def add_user(self, login: str, type: str = "User", permissions: dict[str, str] | None = None) -> User:
        """Create (or update) a user and grant it roles on repositories ("owner/name" -> role)."""
        with self.state.lock:
            user = self.state.user(login, type=type)
            user.type = type
            for full_name, role in (permissions or {}).items():
                if role not in ROLE_NAMES:
                    raise ValueError(f"unknown role {role!r}; GitHub's are {sorted(ROLE_NAMES)}")
                self.state.repos[full_name].permissions[login] = role
            return user

    def install(self, account_login: str) -> Installation:
        """The App's installation on an account, created on first use (GitHub has one per account)."""
        with self.state.lock:
            for installation in self.state.installations.values():
                if installation.account.login == account_login:
                    return installation
            installation = Installation(id=self.state.next_id(), account=self.state.user(account_login))
            self.state.installations[installation.id] = installation
            return installation

    def create_repo(
        self, owner: str, name: str, files: dict[str, str] | None = None, default_branch: str = "main",
        private: bool = False, install: bool = True,
    ) -> Repository:
        """A repository with one commit holding `files`, with the App installed on it (unless install=False)."""
        full_name = f"{owner}/{name}"
        with self.state.lock:
            if full_name in self.state.repos:
                raise ValueError(f"repository {full_name} already exists")
            owner_user = self.state.user(owner)
            git_dir = self.git_root / owner / f"{name}.git"
            author = git.default_signature(owner, f"{owner}@users.noreply.fakehub")
            git.init_repository(git_dir, default_branch, files or {"README.md": f"# {name}\n"}, author)
            repo = Repository(
                id=self.state.next_id(), owner=owner_user, name=name, default_branch=default_branch,
                git_dir=str(git_dir), private=private,
            )
            self.state.repos[full_name] = repo
            if install:
                self.install(owner).repos.add(full_name)
            return repo

    def fork_repo(self, full_name: str, owner: str) -> Repository:
        """`owner`'s fork of `full_name`: a copy of its git data, without the App."""
        with self.state.lock:
            source = self.state.repos[full_name]
            fork_name = f"{owner}/{source.name}"
            if fork_name in self.state.repos:
                raise ValueError(f"repository {fork_name} already exists")
            git_dir = self.git_root / owner / f"{source.name}.git"
            git.copy_repository(source.git_dir, git_dir)
            fork = Repository(id=self.state.next_id(), owner=self.state.user(owner), name=source.name,
                              default_branch=source.default_branch, git_dir=str(git_dir), private=source.private,
                              permissions={owner: "admin"}, fork_of=full_name)
            self.state.repos[fork_name] = fork
            return fork

    def git_dir_for(self, full_name: str) -> str | None:
        repo = self.state.repos.get(full_name)
        return repo.git_dir if repo else None
