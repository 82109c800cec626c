"""Read replicas (issue 10, points 1-4): no schema change.

A read replica is an ``endpoints`` row of ``type = 'read_only'`` (the column exists since
0001); its data directory lives inside its branch's timeline and its lag is measured,
not stored.  The revision keeps the numbered chain unbroken (0005 follows it).

Revision ID: 0004
Revises: 0003
"""

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
