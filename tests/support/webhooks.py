"""Test fixtures: webhooks (filled in by its owner)."""
