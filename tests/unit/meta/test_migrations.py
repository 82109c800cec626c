from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from argon.meta import tables as t
from argon.meta.db import open_database


def test_migrations_create_every_table_and_are_idempotent(metadata_url: str) -> None:
    url = metadata_url
    engine = open_database(url)
    names = set(sa.inspect(engine).get_table_names())
    assert {"projects", "branches", "endpoints", "databases", "roles", "operations",
            "api_keys", "alembic_version"} <= names
    engine.dispose()
    engine = open_database(url)  # a second start migrates nothing and loses nothing
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0009"


def test_times_round_trip_as_aware_utc_and_naive_is_refused(metadata_url: str) -> None:
    engine = open_database(metadata_url)
    now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(t.api_keys.insert().values(name="k", secret_hash="h", created_at=now,
                                                revoked=False))
        got = conn.execute(sa.select(t.api_keys.c.created_at)).scalar()
    assert got == now and got.tzinfo is not None
    with pytest.raises(sa.exc.StatementError, match="naive"):
        with engine.begin() as conn:
            conn.execute(t.api_keys.insert().values(name="k2", secret_hash="h2",
                                                    created_at=datetime(2026, 1, 1),
                                                    revoked=False))


def test_migrations_produce_exactly_the_declared_tables(metadata_url: str) -> None:
    """A change to tables.py without a new revision is caught here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = open_database(metadata_url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), t.metadata) == []
