"""The runner's wheel: the same bytes from any process, a valid wheel of this code, served as stored."""

from __future__ import annotations

import base64
import hashlib
import zipfile

import httpx

import pytest
from pydantic import ValidationError

from app.engines.actions.engine import install_spec
from app.engines.actions.runner_package import build_wheel, runner_wheel, wheel_cache_dir
from app.settings import Settings


def test_two_builds_are_byte_for_byte_the_same():
    # The worker that dispatches and the web process that serves must agree on the hash.
    assert build_wheel() == build_wheel()


def test_the_wheel_holds_this_code_and_a_record_that_checks_out(tmp_path):
    wheel = runner_wheel(tmp_path)
    with zipfile.ZipFile(wheel.path) as archive:
        names = set(archive.namelist())
        assert "app/engines/actions/runner.py" in names and "app/cli/actions_run.py" in names
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        [record] = [n for n in names if n.endswith(".dist-info/RECORD")]
        for line in archive.read(record).decode().splitlines():
            name, digest, size = line.split(",")
            if name == record:
                continue
            data = archive.read(name)
            assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert int(size) == len(data)
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "draftsmith = app.cli:main" in archive.read(entry_points).decode()
    assert hashlib.sha256(wheel.path.read_bytes()).hexdigest() == wheel.sha256


def test_the_route_serves_the_wheel_and_nothing_else(make_draftsmith):
    server = make_draftsmith(worker=False)
    wheel = runner_wheel(wheel_cache_dir(server.settings))
    served = httpx.get(server.url + wheel.url_path())
    assert served.status_code == 200 and hashlib.sha256(served.content).hexdigest() == wheel.sha256
    assert httpx.get(f"{server.url}/api/runner/{'0' * 16}/{wheel.filename}").status_code == 404
    assert httpx.get(f"{server.url}/api/runner/{wheel.digest}/..%2F..%2Fdraftsmith.db").status_code == 404


def test_an_operator_package_replaces_the_wheel_only_when_pinned(tmp_path):
    pinned = "draftsmith @ git+https://github.com/octo/draftsmith@" + "a" * 40
    settings = Settings(DRAFTSMITH_RUNNER_PACKAGE=pinned, DRAFTSMITH_DATA_DIR=str(tmp_path))
    assert install_spec(settings, "https://ds.example") == {"package": pinned}
    for loose in ("draftsmith", "draftsmith @ git+https://github.com/octo/draftsmith@main"):
        with pytest.raises(ValidationError, match="pin one version"):
            Settings(DRAFTSMITH_RUNNER_PACKAGE=loose)
