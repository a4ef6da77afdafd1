"""usage_hours: usage added up by UTC hour, workflow, model and API key as results are stored (filled from the
results stored before)

Revision ID: 0007
Revises: 0006
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HOUR = {  # the start of a result's hour, as each backend stores a datetime; and its day
    'mysql': ("DATE_FORMAT(i.updated_at, '%Y-%m-%d %H:00:00')", "DATE_FORMAT(i.updated_at, '%Y-%m-%d')"),
    'sqlite': ("substr(i.updated_at, 1, 13) || ':00:00.000000'", "substr(i.updated_at, 1, 10)"),
}


def upgrade() -> None:
    op.create_table(
        'usage_hours',
        sa.Column('hour', sa.DateTime().with_variant(sa.dialects.mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
        sa.Column('workflow_name', sa.String(length=128), nullable=False),
        sa.Column('model', sa.String(length=128), nullable=False),
        sa.Column('key_id', sa.BigInteger(), nullable=False),
        sa.Column('day', sa.String(length=10), nullable=False),
        sa.Column('results', sa.BigInteger(), nullable=False),
        sa.Column('tokens_in', sa.BigInteger(), nullable=False),
        sa.Column('tokens_out', sa.BigInteger(), nullable=False),
        sa.Column('cost', sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint('hour', 'workflow_name', 'model', 'key_id', name=op.f('pk_usage_hours')),
    )
    op.create_index(op.f('ix_usage_hours_day_results_tokens_in_tokens_out_cost'), 'usage_hours',
                    ['day', 'results', 'tokens_in', 'tokens_out', 'cost'])
    hour, day = _HOUR[op.get_bind().dialect.name]
    op.execute(
        "INSERT INTO usage_hours (hour, day, workflow_name, model, key_id, results, tokens_in, tokens_out, cost) "
        f"SELECT {hour} AS h, MIN({day}), j.workflow_name, COALESCE(i.model, ''), COALESCE(j.created_by, 0), COUNT(*), "
        "SUM(i.tokens_in), SUM(i.tokens_out), SUM(i.cost) "
        "FROM job_items i JOIN jobs j ON j.id = i.job_id "
        f"GROUP BY h, j.workflow_name, COALESCE(i.model, ''), COALESCE(j.created_by, 0)")


def downgrade() -> None:
    op.drop_table('usage_hours')
