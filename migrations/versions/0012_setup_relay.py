"""setup_states.relay_url: the relay channel /setup created as the new App's webhook URL, saved with its settings

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 17:10:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('setup_states') as batch:
        batch.add_column(sa.Column('relay_url', sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('setup_states') as batch:
        batch.drop_column('relay_url')
