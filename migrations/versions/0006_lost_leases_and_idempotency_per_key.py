"""jobs: lost leases counted (a job whose worker keeps dying fails), an Idempotency-Key unique per API key

Revision ID: 0006
Revises: 0005
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lost_leases', sa.Integer(), server_default='0', nullable=False))
        batch_op.drop_constraint(op.f('uq_jobs_idempotency_key'), type_='unique')
        batch_op.create_unique_constraint(op.f('uq_jobs_created_by_idempotency_key'),
                                          ['created_by', 'idempotency_key'])


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('uq_jobs_created_by_idempotency_key'), type_='unique')
        batch_op.create_unique_constraint(op.f('uq_jobs_idempotency_key'), ['idempotency_key'])
        batch_op.drop_column('lost_leases')
