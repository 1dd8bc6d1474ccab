"""Draftsmith: GitHub issues in, draft pull requests out."""
