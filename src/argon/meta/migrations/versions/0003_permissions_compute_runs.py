"""Project permissions and compute runs (the consumption history's active time).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from argon.meta.tables import UtcDateTime

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table('project_permissions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=256), nullable=False),
    sa.Column('granted_at', UtcDateTime(), nullable=False),
    sa.Column('revoked_at', UtcDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_project_permissions_project_id'), 'project_permissions',
                    ['project_id'], unique=False)
    op.create_table('compute_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('branch_id', sa.String(length=64), nullable=False),
    sa.Column('endpoint_id', sa.String(length=64), nullable=False),
    sa.Column('cu', sa.Float(), nullable=False),
    sa.Column('started_at', UtcDateTime(), nullable=False),
    sa.Column('stopped_at', UtcDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_compute_runs_project_id'), 'compute_runs', ['project_id'],
                    unique=False)
    op.create_index(op.f('ix_compute_runs_endpoint_id'), 'compute_runs', ['endpoint_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_table('compute_runs')
    op.drop_table('project_permissions')
