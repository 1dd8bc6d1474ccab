"""delivery bodies in a table of their own, so storing an outcome rewrites a small row

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 06:30:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('delivery_payloads',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.execute("INSERT INTO delivery_payloads (id, payload) SELECT id, payload FROM deliveries")
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('payload')


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payload', sa.Text(), nullable=False, server_default=''))
    op.execute(
        "UPDATE deliveries SET payload = (SELECT p.payload FROM delivery_payloads p WHERE p.id = deliveries.id)"
        " WHERE id IN (SELECT id FROM delivery_payloads)"
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.alter_column('payload', server_default=None)
    op.drop_table('delivery_payloads')
