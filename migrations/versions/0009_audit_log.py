"""audit_log: who triggered, cancelled or retried a task, set or deleted a key, and when and from where

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 14:30:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_log',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('repo_full_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column('installation_id', sa.BigInteger(), nullable=True),
        sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column('details', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_log_repo_full_name', ['repo_full_name'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_repo_full_name')
        batch_op.drop_index('ix_audit_log_at')
    op.drop_table('audit_log')
