"""workflows, versions, tags and jobs

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 22:35:40.846370
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import core.db.types

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('workflows',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.String(length=2000), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('latest_version', sa.Integer(), nullable=False),
    sa.Column('created_at', core.db.types.UtcDateTime(), nullable=False),
    sa.Column('updated_at', core.db.types.UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workflows')),
    sa.UniqueConstraint('name', name=op.f('uq_workflows_name'))
    )
    with op.batch_alter_table('workflows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workflows_created_at_id'), ['created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_workflows_is_active_created_at_id'), ['is_active', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_workflows_updated_at_id'), ['updated_at', 'id'], unique=False)

    op.create_table('workflow_tags',
    sa.Column('workflow_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tag', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['workflow_id'], ['workflows.id'], name=op.f('fk_workflow_tags_workflow_id_workflows'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workflow_id', 'tag', name=op.f('pk_workflow_tags'))
    )
    with op.batch_alter_table('workflow_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workflow_tags_tag_workflow_id'), ['tag', 'workflow_id'], unique=False)

    op.create_table('workflow_versions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workflow_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('yaml', sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mysql'), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', core.db.types.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['workflow_id'], ['workflows.id'], name=op.f('fk_workflow_versions_workflow_id_workflows'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workflow_versions')),
    sa.UniqueConstraint('workflow_id', 'sha256', name=op.f('uq_workflow_versions_workflow_id_sha256')),
    sa.UniqueConstraint('workflow_id', 'version', name=op.f('uq_workflow_versions_workflow_id_version'))
    )
    op.create_table('jobs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workflow_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workflow_version_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workflow_name', sa.String(length=128), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('priority', sa.SmallInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('rows_total', sa.Integer(), nullable=True),
    sa.Column('rows_done', sa.Integer(), nullable=False),
    sa.Column('rows_failed', sa.Integer(), nullable=False),
    sa.Column('rows_skipped', sa.Integer(), nullable=False),
    sa.Column('rows_per_s', sa.Double(), nullable=True),
    sa.Column('eta_s', sa.Double(), nullable=True),
    sa.Column('tokens_in', sa.BigInteger(), nullable=False),
    sa.Column('tokens_out', sa.BigInteger(), nullable=False),
    sa.Column('cost', sa.Double(), nullable=False),
    sa.Column('created_at', core.db.types.UtcDateTime(), nullable=False),
    sa.Column('updated_at', core.db.types.UtcDateTime(), nullable=False),
    sa.Column('started_at', core.db.types.UtcDateTime(), nullable=True),
    sa.Column('completed_at', core.db.types.UtcDateTime(), nullable=True),
    sa.Column('worker_id', sa.String(length=128), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mysql'), nullable=True),
    sa.Column('trace_id', sa.String(length=32), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['workflow_id'], ['workflows.id'], name=op.f('fk_jobs_workflow_id_workflows')),
    sa.ForeignKeyConstraint(['workflow_version_id'], ['workflow_versions.id'], name=op.f('fk_jobs_workflow_version_id_workflow_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_jobs_idempotency_key'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_completed_at_id'), ['completed_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_created_at_id'), ['created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_started_at_id'), ['started_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_status_created_at_id'), ['status', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_status_priority_created_at_id'), ['status', 'priority', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_updated_at_id'), ['updated_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_workflow_id_created_at_id'), ['workflow_id', 'created_at', 'id'], unique=False)




def downgrade() -> None:
    # Dropping a table drops its indexes; dropping those first fails on MariaDB where a FK needs one.
    for table in ("jobs", "workflow_versions", "workflow_tags", "workflows"):
        op.drop_table(table)
