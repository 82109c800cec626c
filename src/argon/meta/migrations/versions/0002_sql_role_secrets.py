"""SCRAM verifiers of login roles created with SQL (synced from the branch's Postgres).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from argon.meta.tables import UtcDateTime

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table('sql_role_secrets',
    sa.Column('branch_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('verifier', sa.Text(), nullable=False),
    sa.Column('synced_at', UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['branch_id'], ['branches.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('branch_id', 'name')
    )


def downgrade() -> None:
    op.drop_table('sql_role_secrets')
