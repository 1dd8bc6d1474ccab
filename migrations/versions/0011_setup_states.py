"""setup_states: the /setup (App manifest) attempts in flight, each checked and used once on GitHub's redirect back

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 16:20:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('setup_states',
    sa.Column('state_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('web_url', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('api_url', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('used_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('state_hash')
    )


def downgrade() -> None:
    op.drop_table('setup_states')
