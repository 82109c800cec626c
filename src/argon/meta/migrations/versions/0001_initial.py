"""Initial schema: projects, branches, endpoints, databases, roles, operations, API keys.

Revision ID: 0001
Revises:
"""

from alembic import op

from argon.meta import tables

revision = "0001"
down_revision = None


def upgrade() -> None:
    # The first revision creates the tables exactly as declared; later revisions alter
    # them step by step with op.* calls.
    bind = op.get_bind()
    tables.metadata.create_all(bind)


def downgrade() -> None:
    tables.metadata.drop_all(op.get_bind())
