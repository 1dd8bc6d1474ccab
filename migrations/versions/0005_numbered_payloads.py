"""delivery bodies numbered in arrival order (deliveries.payload_id) instead of keyed by the random delivery id

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 10:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def _rename_table(old: str, new: str) -> None:
    """Rename a table; on PostgreSQL its primary key and id sequence too, which keep the old name otherwise."""
    op.rename_table(old, new)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f'ALTER TABLE {new} RENAME CONSTRAINT {old}_pkey TO {new}_pkey')
        op.execute(f'ALTER SEQUENCE IF EXISTS {old}_id_seq RENAME TO {new}_id_seq')


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payload_id', sa.BigInteger(), nullable=True))
    op.create_table('delivery_payloads_numbered',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('payload_lz4', sa.LargeBinary(), nullable=False),
    sa.Column('delivery_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    # Oldest first, so the numbers follow arrival order as new ones will.
    op.execute(
        "INSERT INTO delivery_payloads_numbered (delivery_id, payload_lz4)"
        " SELECT p.id, p.payload_lz4 FROM delivery_payloads p JOIN deliveries d ON d.id = p.id"
        " ORDER BY d.received_at, d.id"
    )
    op.create_index('ix_delivery_payloads_numbered_delivery_id', 'delivery_payloads_numbered', ['delivery_id'])
    op.execute(
        "UPDATE deliveries SET payload_id = (SELECT n.id FROM delivery_payloads_numbered n"
        " WHERE n.delivery_id = deliveries.id)"
    )
    op.drop_index('ix_delivery_payloads_numbered_delivery_id', table_name='delivery_payloads_numbered')
    op.drop_table('delivery_payloads')
    with op.batch_alter_table('delivery_payloads_numbered', schema=None) as batch_op:
        batch_op.drop_column('delivery_id')
    _rename_table('delivery_payloads_numbered', 'delivery_payloads')


def downgrade() -> None:
    op.create_table('delivery_payloads_by_delivery',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('payload_lz4', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.execute(
        "INSERT INTO delivery_payloads_by_delivery (id, payload_lz4)"
        " SELECT d.id, p.payload_lz4 FROM deliveries d JOIN delivery_payloads p ON p.id = d.payload_id"
    )
    op.drop_table('delivery_payloads')
    _rename_table('delivery_payloads_by_delivery', 'delivery_payloads')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('payload_id')
