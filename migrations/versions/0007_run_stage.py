"""runs.stage: how far a run got, so a run ended by the sweeper or the Actions engine shows where it stopped

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 11:10:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable and left empty on existing runs: where they stopped was never recorded.
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('stage')
