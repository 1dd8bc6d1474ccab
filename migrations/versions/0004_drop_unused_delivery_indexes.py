"""drop the deliveries indexes on event and installation_id: no query uses them, and ingress writes them

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 09:40:00
"""
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliveries_installation_id'))
        batch_op.drop_index(batch_op.f('ix_deliveries_event'))


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deliveries_event'), ['event'], unique=False)
        batch_op.create_index(batch_op.f('ix_deliveries_installation_id'), ['installation_id'], unique=False)
