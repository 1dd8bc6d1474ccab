"""Test fixtures: fake_llm (filled in by its owner)."""
