"""Initial schema: projects, branches, endpoints, databases, roles, operations, API keys.

Revision ID: 0001
Revises:

Frozen as explicit operations: later changes to ``tables.py`` come with a new numbered
revision and never alter what this one creates.
"""

import sqlalchemy as sa
from alembic import op

from argon.meta.tables import UtcDateTime

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', UtcDateTime(), nullable=False),
    sa.Column('last_used_at', UtcDateTime(), nullable=True),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('secret_hash')
    )
    op.create_table('operations',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('branch_id', sa.String(length=64), nullable=True),
    sa.Column('endpoint_id', sa.String(length=64), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('failures_count', sa.Integer(), nullable=False),
    sa.Column('created_at', UtcDateTime(), nullable=False),
    sa.Column('updated_at', UtcDateTime(), nullable=False),
    sa.Column('total_duration_ms', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_operations_project_id'), 'operations', ['project_id'], unique=False)
    op.create_table('projects',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('region_id', sa.String(length=64), nullable=False),
    sa.Column('pg_version', sa.Integer(), nullable=False),
    sa.Column('history_retention_seconds', sa.Integer(), nullable=False),
    sa.Column('default_endpoint_settings', sa.JSON(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('created_at', UtcDateTime(), nullable=False),
    sa.Column('updated_at', UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('branches',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('timeline_id', sa.String(length=64), nullable=False),
    sa.Column('parent_id', sa.String(length=64), nullable=True),
    sa.Column('parent_lsn', sa.String(length=32), nullable=True),
    sa.Column('parent_timestamp', UtcDateTime(), nullable=True),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('protected', sa.Boolean(), nullable=False),
    sa.Column('init_source', sa.String(length=32), nullable=False),
    sa.Column('expires_at', UtcDateTime(), nullable=True),
    sa.Column('last_reset_at', UtcDateTime(), nullable=True),
    sa.Column('created_at', UtcDateTime(), nullable=False),
    sa.Column('updated_at', UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'name', name='uq_branch_name'),
    sa.UniqueConstraint('timeline_id')
    )
    op.create_index(op.f('ix_branches_project_id'), 'branches', ['project_id'], unique=False)
    op.create_table('databases',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('branch_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('owner_name', sa.String(length=64), nullable=False),
    sa.Column('created_at', UtcDateTime(), nullable=False),
    sa.Column('updated_at', UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['branch_id'], ['branches.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('branch_id', 'name', name='uq_database_name')
    )
    op.create_index(op.f('ix_databases_branch_id'), 'databases', ['branch_id'], unique=False)
    op.create_table('endpoints',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('branch_id', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('min_cu', sa.Float(), nullable=False),
    sa.Column('max_cu', sa.Float(), nullable=False),
    sa.Column('suspend_timeout_seconds', sa.Integer(), nullable=False),
    sa.Column('pooler_enabled', sa.Boolean(), nullable=False),
    sa.Column('pooler_mode', sa.String(length=16), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('pg_settings', sa.JSON(), nullable=False),
    sa.Column('proxy_port', sa.Integer(), nullable=True),
    sa.Column('pooler_port', sa.Integer(), nullable=True),
    sa.Column('compute_port', sa.Integer(), nullable=True),
    sa.Column('last_active', UtcDateTime(), nullable=True),
    sa.Column('started_at', UtcDateTime(), nullable=True),
    sa.Column('suspended_at', UtcDateTime(), nullable=True),
    sa.Column('created_at', UtcDateTime(), nullable=False),
    sa.Column('updated_at', UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['branch_id'], ['branches.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_endpoints_branch_id'), 'endpoints', ['branch_id'], unique=False)
    op.create_index(op.f('ix_endpoints_project_id'), 'endpoints', ['project_id'], unique=False)
    op.create_table('roles',
    sa.Column('branch_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('protected', sa.Boolean(), nullable=False),
    sa.Column('scram_verifier', sa.Text(), nullable=True),
    sa.Column('password_encrypted', sa.Text(), nullable=True),
    sa.Column('created_at', UtcDateTime(), nullable=False),
    sa.Column('updated_at', UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['branch_id'], ['branches.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('branch_id', 'name')
    )


def downgrade() -> None:
    for name in ("roles", "databases", "endpoints", "branches", "projects", "operations",
                 "api_keys"):
        op.drop_table(name)
