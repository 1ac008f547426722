"""public_reason: a reviewer's reason meant for the public, kept apart from the private comment

Reviewers' comments are never published; a reject or changes-requested transition used to copy the
comment into the project's history (shown on the portal): those copies are blanked.

Revision ID: 0007
Revises: 0005 (becomes 0006 once the branch that adds 0006 is merged)
Create Date: 2026-12-04 18:10:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.add_column(sa.Column('public_reason', sa.Text(), nullable=False, server_default=''))
    op.execute("UPDATE project_events SET reason = '' WHERE to_status IN ('rejected', 'changes_requested') "
               "AND reason IN (SELECT comment FROM reviews WHERE reviews.project_id = project_events.project_id)")


def downgrade() -> None:
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.drop_column('public_reason')
