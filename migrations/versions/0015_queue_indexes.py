"""indexes for what intake and the buttons look up on every trigger, which grew with the tasks of a burst

tasks (installation_id, created_at) for the daily limit, runs.queued_at for the daily cost budget,
tasks.check_run_id for the check run's buttons.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 20:30:00
"""
from alembic import op


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_tasks_installation_created', 'tasks', ['installation_id', 'created_at'])
    op.create_index('ix_tasks_check_run_id', 'tasks', ['check_run_id'])
    op.create_index('ix_runs_queued_at', 'runs', ['queued_at'])


def downgrade() -> None:
    op.drop_index('ix_runs_queued_at', 'runs')
    op.drop_index('ix_tasks_check_run_id', 'tasks')
    op.drop_index('ix_tasks_installation_created', 'tasks')
