"""run_turns: when each installation last had a run started, the fair queue's tie-break

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 20:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'run_turns',
        sa.Column('installation_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('last_started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('installation_id'),
    )


def downgrade() -> None:
    op.drop_table('run_turns')
