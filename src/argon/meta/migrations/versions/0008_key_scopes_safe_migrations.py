"""API key scopes (organization and project keys, where a key was last used from) and
prepared safe migrations kept across restarts.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from argon.meta.tables import UtcDateTime

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.add_column(sa.Column('org_id', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('project_id', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('last_used_from_addr', sa.String(length=64),
                                   nullable=True))
    op.create_table('safe_migrations',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('target_branch_id', sa.String(length=64), nullable=False),
    sa.Column('database', sa.String(length=128), nullable=False),
    sa.Column('sql', sa.Text(), nullable=False),
    sa.Column('temp_branch_id', sa.String(length=64), nullable=False),
    sa.Column('temp_branch_name', sa.String(length=256), nullable=False),
    sa.Column('role', sa.String(length=128), nullable=True),
    sa.Column('created_at', UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('safe_migrations')
    with op.batch_alter_table('api_keys') as batch:
        batch.drop_column('last_used_from_addr')
        batch.drop_column('project_id')
        batch.drop_column('org_id')
