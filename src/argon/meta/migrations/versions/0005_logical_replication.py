"""Logical replication (issue 10, point 5): no schema change.

The setting lives in ``projects.settings`` (JSON) and slots live in each compute's data
directory, so nothing is added here; the revision keeps the numbered chain unbroken
(0004 read replicas, 0006 console history come before and after it).

Revision ID: 0005
Revises: 0004
"""

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
