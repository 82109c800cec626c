"""Where a running compute takes connections, as its provider's ``start`` returned it
(``endpoints.compute_host`` with ``compute_port``): another Argon process on the same
metadata routes to it instead of starting a second compute.  NULL while none runs.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    with op.batch_alter_table('endpoints') as batch:
        batch.add_column(sa.Column('compute_host', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('endpoints') as batch:
        batch.drop_column('compute_host')
