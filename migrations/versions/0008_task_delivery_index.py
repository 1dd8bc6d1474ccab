"""tasks.delivery_id indexed: a delivery handled again (after a transient failure or a crash) finds its task

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 14:20:00
"""
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_delivery_id', ['delivery_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_delivery_id')
