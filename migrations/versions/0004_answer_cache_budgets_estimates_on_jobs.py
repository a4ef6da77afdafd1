"""answer cache, budgets, estimates on jobs

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 19:07:04.758663
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import core.db.types

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('answers',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('content', sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mysql'), nullable=False),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('tokens_in', sa.BigInteger(), nullable=False),
    sa.Column('tokens_out', sa.BigInteger(), nullable=False),
    sa.Column('cost', sa.Double(), nullable=False),
    sa.Column('stored_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_answers'))
    )
    op.create_table('budget_holds',
    sa.Column('counter', sa.String(length=191), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('amount', sa.Double(), nullable=False),
    sa.Column('expires_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('counter', 'holder', name=op.f('pk_budget_holds'))
    )
    with op.batch_alter_table('budget_holds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_budget_holds_holder'), ['holder'], unique=False)

    op.create_table('budget_spend',
    sa.Column('counter', sa.String(length=191), nullable=False),
    sa.Column('spent', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('counter', name=op.f('pk_budget_spend'))
    )
    op.create_table('budgets',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('target', sa.String(length=128), nullable=False),
    sa.Column('period', sa.String(length=16), nullable=False),
    sa.Column('limit_usd', sa.Double(), nullable=False),
    sa.Column('created_at', core.db.types.UtcDateTime(), nullable=False),
    sa.Column('updated_at', core.db.types.UtcDateTime(), nullable=False),
    sa.Column('created_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_budgets')),
    sa.UniqueConstraint('scope', 'target', 'period', name=op.f('uq_budgets_scope_target_period'))
    )
    with op.batch_alter_table('job_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cached', sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rows_cached', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('cost_saved', sa.Double(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('estimate', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('budget_pause', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('budget_pause')
        batch_op.drop_column('estimate')
        batch_op.drop_column('cost_saved')
        batch_op.drop_column('rows_cached')

    with op.batch_alter_table('job_items', schema=None) as batch_op:
        batch_op.drop_column('cached')

    op.drop_table('budgets')
    op.drop_table('budget_spend')
    with op.batch_alter_table('budget_holds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_budget_holds_holder'))

    op.drop_table('budget_holds')
    op.drop_table('answers')
