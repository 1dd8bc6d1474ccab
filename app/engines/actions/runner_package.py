"""What an Actions runner installs: this server's own code as a wheel, the same bytes wherever it is built.

The dispatch payload carries the wheel's URL and sha256, and the workflow installs it hash-checked, so a
runner runs exactly the version that dispatched it, never a package from an index that anyone could
register under our name. Its few dependencies are pinned to the versions this server runs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import threading
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import app

DIST = "draftsmith"
# What `draftsmith actions-run` imports besides the standard library (tests/actions/test_runner_install.py
# installs only these next to the wheel and runs it).
RUNNER_REQUIREMENTS = ("httpx", "typer", "pydantic", "pydantic-settings", "structlog")
# Fixed zip metadata (the zip epoch, rw-r--r--) and no compression: the bytes depend on the files
# alone, not on the clock or the zlib build, so a web and a worker process agree on the hash.
_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_MODE = 0o644 << 16
_SKIPPED_DIRS = {"__pycache__"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


class RunnerPackageUnavailable(RuntimeError):
    """This process cannot build the wheel (Draftsmith is not installed as a distribution)."""


@dataclass(frozen=True)
class RunnerWheel:
    path: Path
    sha256: str

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def digest(self) -> str:
        """A short, URL-safe name for this build (the wheel's filename is the same for every build)."""
        return self.sha256[:16]

    def url_path(self) -> str:
        return f"/api/runner/{self.digest}/{self.filename}"


def wheel_cache_dir(settings) -> Path:
    return Path(settings.data_dir) / "runner"


def requirements() -> list[str]:
    """The runner's dependencies, pinned to the versions this server has."""
    return [f"{name}=={metadata.version(name)}" for name in RUNNER_REQUIREMENTS]


_lock = threading.Lock()
_built: dict[Path, RunnerWheel] = {}


def runner_wheel(cache_dir: Path) -> RunnerWheel:
    """This process's wheel, built once and kept in `cache_dir/<digest>/` (where the web route serves it)."""
    cache_dir = Path(cache_dir).absolute()
    with _lock:
        wheel = _built.get(cache_dir)
        if wheel is None or not wheel.path.exists():
            wheel = _built[cache_dir] = _write(cache_dir, *build_wheel())
        return wheel


def cached_wheel(cache_dir: Path, digest: str, filename: str) -> Path | None:
    """A wheel built earlier under `digest` (perhaps by another process, before an upgrade), if kept."""
    if not re.fullmatch(r"[0-9a-f]{16}", digest) or not re.fullmatch(r"[\w.\-]+\.whl", filename):
        return None
    path = Path(cache_dir) / digest / filename
    return path if path.is_file() else None


def build_wheel() -> tuple[str, bytes]:
    """(filename, content) of a wheel holding the installed `app` package and its distribution's metadata."""
    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        raise RunnerPackageUnavailable(
            f"the {DIST} distribution is not installed here, so there is no wheel to give Actions runners; "
            f"install it (uv sync, pip install) or set DRAFTSMITH_RUNNER_PACKAGE") from None
    version = dist.version
    info = f"{DIST}-{version}.dist-info"
    entries: list[tuple[str, bytes]] = []
    root = Path(app.__file__).parent
    for path in sorted(_package_files(root)):
        entries.append((f"app/{path.relative_to(root).as_posix()}", path.read_bytes()))
    entries.append((f"{info}/METADATA", (dist.read_text("METADATA") or "").encode()))
    entries.append((f"{info}/WHEEL", (
        "Wheel-Version: 1.0\nGenerator: draftsmith\nRoot-Is-Purelib: true\nTag: py3-none-any\n").encode()))
    if entry_points := dist.read_text("entry_points.txt"):
        entries.append((f"{info}/entry_points.txt", entry_points.encode()))
    record = "".join(f"{name},sha256={_urlsafe_digest(data)},{len(data)}\n" for name, data in entries)
    entries.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries:
            entry = zipfile.ZipInfo(name, date_time=_DATE_TIME)
            entry.external_attr = _MODE
            archive.writestr(entry, data)
    return f"{DIST}-{version}-py3-none-any.whl", buffer.getvalue()


def _package_files(root: Path):
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
        for name in files:
            if not name.endswith(_SKIPPED_SUFFIXES):
                yield Path(directory) / name


def _urlsafe_digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _write(cache_dir: Path, filename: str, content: bytes) -> RunnerWheel:
    sha256 = hashlib.sha256(content).hexdigest()
    wheel = RunnerWheel(cache_dir / sha256[:16] / filename, sha256)
    if wheel.path.is_file() and hashlib.sha256(wheel.path.read_bytes()).hexdigest() == sha256:
        return wheel
    wheel.path.parent.mkdir(parents=True, exist_ok=True)
    partial = wheel.path.with_name(f".{filename}.{os.getpid()}.{threading.get_ident()}")
    partial.write_bytes(content)
    os.replace(partial, wheel.path)  # a reader never sees half a wheel
    return wheel
