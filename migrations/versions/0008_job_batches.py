"""job_batches, job_batch_requests, job_batch_lines: a job's provider batches, what each holds, the lines they
returned (batch mode); jobs.batches: the batches as the job record shows them

Revision ID: 0008
Revises: 0007
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mysql')


def _job_id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column('job_id', _ID, nullable=False)


def upgrade() -> None:
    # Not in batch mode: SQLite would copy the jobs table, and dropping the old one cascades to every job's rows.
    op.add_column('jobs', sa.Column('batches', sa.JSON(none_as_null=True), nullable=True))
    op.create_table(
        'job_batches',
        sa.Column('label', sa.String(length=32), nullable=False),
        _job_id(),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('deployment', sa.String(length=128), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('requests', sa.Integer(), nullable=False),
        sa.Column('max_cost', sa.Double(), nullable=False),
        sa.Column('file_id', sa.String(length=128), nullable=True),
        sa.Column('batch_id', sa.String(length=128), nullable=True),
        sa.Column('status', sa.String(length=32), nullable=True),
        sa.Column('completed', sa.Integer(), nullable=False),
        sa.Column('failed', sa.Integer(), nullable=False),
        sa.Column('cost', sa.Double(), nullable=False),
        sa.Column('saved', sa.Double(), nullable=False),
        sa.Column('created_at', sa.Double(), nullable=False),
        sa.Column('ended_at', sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_batches_job_id_jobs'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('label', name=op.f('pk_job_batches')),
    )
    op.create_index(op.f('ix_job_batches_job_id'), 'job_batches', ['job_id'])
    op.create_table(
        'job_batch_requests',
        sa.Column('label', sa.String(length=32), nullable=False),
        sa.Column('position', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('custom_id', _TEXT, nullable=False),
        sa.Column('line_id', _TEXT, nullable=False),
        sa.Column('request', sa.String(length=64), nullable=False),
        sa.Column('ask', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['label'], ['job_batches.label'], name=op.f('fk_job_batch_requests_label_job_batches'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('label', 'position', name=op.f('pk_job_batch_requests')),
    )
    op.create_table(
        'job_batch_lines',
        _job_id(),
        sa.Column('line_hash', sa.String(length=64), nullable=False),
        sa.Column('line_id', _TEXT, nullable=False),
        sa.Column('request', sa.String(length=64), nullable=False),
        sa.Column('ask', sa.Integer(), nullable=False),
        sa.Column('row_hash', sa.String(length=64), nullable=False),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.Column('body', _TEXT, nullable=False),
        sa.Column('deployment', sa.String(length=128), nullable=False),
        sa.Column('cost', sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_batch_lines_job_id_jobs'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('job_id', 'line_hash', name=op.f('pk_job_batch_lines')),
    )
    op.create_index(op.f('ix_job_batch_lines_job_id_row_hash'), 'job_batch_lines', ['job_id', 'row_hash'])


def downgrade() -> None:
    op.drop_table('job_batch_lines')
    op.drop_table('job_batch_requests')
    op.drop_table('job_batches')
    op.execute('ALTER TABLE jobs DROP COLUMN batches')  # SQLite 3.35+ and MySQL alike, the table kept in place
