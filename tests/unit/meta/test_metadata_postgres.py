"""Metadata on a real Postgres: the migrations bring an empty database to head with
exactly the declared tables, the URLs users copy work, and a database that cannot be
reached is a sentence saying what to check (never the password)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from argon.errors import InvalidInput, Unavailable
from argon.meta import tables as t
from argon.meta.db import describe_url, engine_url, open_database
from tests.fixtures.metadata_pg import MetadataPg


def test_an_empty_postgres_is_migrated_to_head_with_the_declared_tables(
        metadata_pg: MetadataPg) -> None:
    url = metadata_pg.new_database("mig")
    engine = open_database(url)
    try:
        assert engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
        names = set(sa.inspect(engine).get_table_names())
        assert names == {*t.metadata.tables, "alembic_version"}
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), t.metadata) == []
            head = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        engine.dispose()
        engine = open_database(url)          # a second start migrates nothing, loses nothing
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")
                                ).scalar() == head
    finally:
        engine.dispose()


def test_rows_round_trip_booleans_json_and_times(metadata_pg: MetadataPg) -> None:
    engine = open_database(metadata_pg.new_database("rows"))
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            conn.execute(t.projects.insert().values(
                id="p1", name="P", region_id="local", pg_version=18,
                history_retention_seconds=3600, default_endpoint_settings={"a": 1},
                settings={"allowed_ips": {"ips": ["1.2.3.4"]}}, created_at=now,
                updated_at=now))
            conn.execute(t.api_keys.insert().values(name="k", secret_hash="h", created_at=now,
                                                    revoked=False))
            row = conn.execute(sa.select(t.projects)).one()
            key = conn.execute(sa.select(t.api_keys).where(~t.api_keys.c.revoked)).one()
        assert row.settings == {"allowed_ips": {"ips": ["1.2.3.4"]}} and row.created_at == now
        assert key.id == 1 and key.revoked is False
    finally:
        engine.dispose()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_plain_postgres_urls_open_with_psycopg(metadata_pg: MetadataPg, scheme: str) -> None:
    url = metadata_pg.new_database("scheme").replace("postgresql://", f"{scheme}://", 1)
    engine = open_database(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_an_unreachable_database_says_what_to_check_without_the_password(
        metadata_pg: MetadataPg) -> None:
    wrong = metadata_pg.url("postgres", password="not-the-password-42")
    with pytest.raises(Unavailable) as err:
        open_database(wrong)
    text = err.value.message
    assert "password authentication failed" in text and "Check that Postgres runs" in text
    assert "not-the-password-42" not in text and "argon_meta:***@" in text
    missing = metadata_pg.url("no_such_db")
    with pytest.raises(Unavailable, match='database "no_such_db" does not exist'):
        open_database(missing)
    with pytest.raises(Unavailable, match="refused|failed"):
        open_database("postgresql://argon_meta:pw@127.0.0.1:1/x")


def test_other_schemes_are_refused_and_urls_are_shown_without_passwords() -> None:
    with pytest.raises(InvalidInput, match="scheme 'mysql' is not supported"):
        engine_url("mysql://u:p@h/db")
    with pytest.raises(InvalidInput, match="not a URL"):
        engine_url("just-a-host")
    assert engine_url("postgres://u:p@h:5/db") == "postgresql+psycopg://u:p@h:5/db"
    assert describe_url("postgres://u:s3cret@h:5/db") == "postgresql://u:***@h:5/db"


def test_argon_start_on_an_unreachable_database_is_one_sentence_not_a_traceback(
        metadata_pg: MetadataPg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from tests.fixtures.common import free_port  # noqa: PLC0415

    home = tmp_path / "home"
    url = metadata_pg.url("postgres", password="s3cret-not-shown")
    res = subprocess.run(
        [sys.executable, "-m", "argon.cli.main", "start", "--home", str(home),
         "--api-port", str(free_port()), "--pg-port", str(free_port()),
         "--http-port", str(free_port())], env={**os.environ, "ARGON_METADATA_URL": url},
        capture_output=True, text=True, timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "error: cannot reach the metadata database postgresql://argon_meta:***@" in out
    assert "password authentication failed" in out and "Traceback" not in out
    assert "s3cret-not-shown" not in out
    assert "s3cret-not-shown" not in (home / "logs" / "argon.log").read_text()
