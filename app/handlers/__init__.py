"""The merged router: every handler module's `router`, in one place (as bedevere's __main__ does)."""

from __future__ import annotations

from app.events.router import Router
from app.handlers import assignment, check_runs, ci, comments, installations, reviews, workflows

# Add each concern's module here; order is the order handlers run for the same event.
router = Router(
    installations.router,
    assignment.router,
    comments.router,
    reviews.router,
    check_runs.router,
    ci.router,
    workflows.router,
)
