"""runs.reported_at: when a run's end was written back to GitHub, so one a dead worker left unsaid is said again

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 17:10:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.add_column(sa.Column('reported_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    # Runs that ended before this column were reported (or will never be): none is said again.
    op.execute("UPDATE runs SET reported_at = ended_at WHERE ended_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.drop_column('reported_at')
