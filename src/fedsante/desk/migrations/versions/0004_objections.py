"""objections: sealed patient objections, each node's objection key and datasets offered

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 09:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('objection_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('datasets', sa.JSON(), nullable=True))
    op.create_table(
        'objections',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('node_id', sa.String(length=64), nullable=False),
        sa.Column('ciphertext', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=24), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('applied_at', sa.DateTime(), nullable=True),
        sa.Column('withdrawn_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('objections')
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.drop_column('datasets')
        batch_op.drop_column('objection_key')
