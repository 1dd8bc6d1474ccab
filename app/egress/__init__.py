"""Sandbox egress: the allow-list policy (pure) and the per-run proxy that enforces it."""
