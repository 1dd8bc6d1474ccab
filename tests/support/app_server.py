"""Test fixtures: app_server (filled in by its owner)."""
