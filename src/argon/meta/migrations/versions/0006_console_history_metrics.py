"""The console's query history, the endpoints' monitoring samples, OTLP export settings.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from argon.meta.tables import UtcDateTime

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table('query_history',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('branch_id', sa.String(length=64), nullable=False),
    sa.Column('database', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=64), nullable=False),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('at_time', UtcDateTime(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('row_count', sa.Integer(), nullable=True),
    sa.Column('duration_ms', sa.Float(), nullable=False),
    sa.Column('started_at', UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_query_history_project_id'), 'query_history', ['project_id'],
                    unique=False)
    op.create_table('endpoint_samples',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('endpoint_id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('at', UtcDateTime(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('cpu_percent', sa.Float(), nullable=True),
    sa.Column('memory_bytes', sa.BigInteger(), nullable=True),
    sa.Column('connections', sa.Integer(), nullable=True),
    sa.Column('active_connections', sa.Integer(), nullable=True),
    sa.Column('qps', sa.Float(), nullable=True),
    sa.Column('rows_written_per_s', sa.Float(), nullable=True),
    sa.Column('wal_bytes_per_s', sa.Float(), nullable=True),
    sa.Column('replica_lag_bytes', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_endpoint_samples_endpoint_at', 'endpoint_samples',
                    ['endpoint_id', 'at'], unique=False)
    op.create_index(op.f('ix_endpoint_samples_at'), 'endpoint_samples', ['at'], unique=False)
    op.create_table('otel_exports',
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('endpoint', sa.String(length=2048), nullable=False),
    sa.Column('bearer_encrypted', sa.Text(), nullable=True),
    sa.Column('resource_attributes', sa.JSON(), nullable=False),
    sa.Column('last_push_at', UtcDateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', UtcDateTime(), nullable=False),
    sa.Column('updated_at', UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id')
    )


def downgrade() -> None:
    op.drop_table('otel_exports')
    op.drop_table('endpoint_samples')
    op.drop_table('query_history')
