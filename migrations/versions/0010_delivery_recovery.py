"""delivery_recovery: how far back GitHub's list of the App's deliveries was checked for lost ones, and totals

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 14:10:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Starts empty: the first sweep looks back app.deliveries.recovery.FIRST_LOOKBACK.
    op.create_table('delivery_recovery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('checkpoint', sa.BigInteger(), nullable=True),
    sa.Column('checked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('redeliveries', sa.Integer(), nullable=False),
    sa.Column('failed_again', sa.Integer(), nullable=False),
    sa.Column('rate_limited', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('delivery_recovery')
