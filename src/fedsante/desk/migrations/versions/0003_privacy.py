"""privacy: each run's planned releases, each node's reported ledger totals

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 10:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('privacy_spent', sa.JSON(), nullable=True))
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('privacy', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('privacy')
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.drop_column('privacy_spent')
