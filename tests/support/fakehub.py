"""Test fixtures: fakehub (filled in by its owner)."""
