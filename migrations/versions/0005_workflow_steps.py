"""workflow steps: a result per (row, step, model) in job_items, per-step counts on jobs

Revision ID: 0005
Revises: 0004
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('job_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('step', sa.String(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('target', sa.String(length=128), server_default='', nullable=False))

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('steps', sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('steps')

    with op.batch_alter_table('job_items', schema=None) as batch_op:
        batch_op.drop_column('target')
        batch_op.drop_column('step')
