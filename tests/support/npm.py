"""npm packages the tests read; the install logic lives in app.fakehub.npm so `draftsmith fakehub` shares it."""

from __future__ import annotations

from app.fakehub.npm import CACHE_DIR, PACKAGES, node_modules, openapi_spec_path, webhook_examples_path

__all__ = ["CACHE_DIR", "PACKAGES", "node_modules", "openapi_spec_path", "webhook_examples_path"]
