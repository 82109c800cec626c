"""Postgres removes its catalog cache files (``pg_internal.init``) at every start, so the
first login to each database after a start builds them again (about 5-8 ms here).
Argon's own check of a fresh start logs in to the branch's first database: a branch's
or a woken endpoint's first client there finds them built.  A database dropped with SQL
since the metadata heard of it costs only that warm-up, never the start."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from argon.compute import ComputeManager, ComputeSpec, ComputeState
from tests.fixtures.argon_env import ArgonEnv
from tests.fixtures.compute import place
from tests.integration.core.helpers import create_branch, new_project


def _cache_file(spec: ComputeSpec, db_oid: int) -> Path:
    return place(spec).pgdata / "base" / str(db_oid) / "pg_internal.init"


def test_a_start_builds_the_catalog_caches_of_the_branchs_first_database(
        make_compute_spec: Callable[..., ComputeSpec],
        compute_manager: ComputeManager) -> None:
    spec = make_compute_spec()
    compute_manager.start_process(spec)
    with compute_manager.connect(spec) as conn:
        conn.execute("CREATE DATABASE appdb")
        row = conn.execute("SELECT oid FROM pg_database WHERE datname = 'appdb'").fetchone()
    assert row is not None
    oid = int(row[0])
    with compute_manager.connect(spec, dbname="appdb") as conn:   # builds its cache file
        conn.execute("SELECT 1")
    compute_manager.stop(spec)
    assert _cache_file(spec, oid).exists()   # kept on disk by a clean stop...

    compute_manager.start_process(spec)      # ...and removed by the next start
    assert not _cache_file(spec, oid).exists()
    compute_manager.stop(spec)

    warm = replace(spec, warm_database="appdb")
    compute_manager.start_process(warm)      # the check logged in there: built again
    assert _cache_file(spec, oid).exists()
    compute_manager.stop(warm)


def test_a_warm_database_dropped_meanwhile_does_not_stop_the_start(
        make_compute_spec: Callable[..., ComputeSpec],
        compute_manager: ComputeManager) -> None:
    spec = replace(make_compute_spec(), warm_database="dropped_with_sql")
    compute_manager.start_process(spec)
    assert compute_manager.state(spec) is ComputeState.ACTIVE
    with compute_manager.connect(spec) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)


def test_a_new_branchs_database_has_its_caches_before_its_first_client(
        argon_env: ArgonEnv) -> None:
    env = argon_env
    pid = new_project(env, "warm-database")["project"]["id"]
    created = create_branch(env, pid, "warm")
    uri = created["connection_uris"][0]["connection_uri"]
    # asked through another database, so that this session builds no cache of the first
    with psycopg.connect(_on_database(uri, "postgres"), autocommit=True) as conn:
        pgdata = Path(str(conn.execute("SHOW data_directory").fetchone()[0]))  # type: ignore[index]
        oid = conn.execute("SELECT oid FROM pg_database WHERE datname = 'neondb'").fetchone()
    assert oid is not None
    assert (pgdata / "base" / str(oid[0]) / "pg_internal.init").exists()


def _on_database(uri: str, dbname: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path=f"/{dbname}"))
