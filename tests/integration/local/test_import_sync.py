"""``argon import --sync`` / ``--cutover`` (issue 14, point 3): a real Postgres started by the
test with ``wal_level = logical``, under a tpcb-like pgbench load and an inserting thread,
synced into a new Argon branch by logical replication, then cut over with nothing lost
(balances and row counts equal on both sides, sequences advanced so the branch's next
insert does not collide). A source without ``wal_level = logical``, or whose role may not
replicate, is refused before anything is made."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from argon.pg import OsUser, choose_install
from tests.fixtures.argon_env import ArgonEnv
from tests.fixtures.local_door import branches
from tests.fixtures.pgserver import PgServer, make_pg_server

pytestmark = [pytest.mark.timeout(600), pytest.mark.skipif(
    os.geteuid() != 0, reason="starts a Postgres server under the Postgres account: needs root")]

SUMS = ("SELECT (SELECT sum(abalance) FROM pgbench_accounts),"
        " (SELECT sum(bbalance) FROM pgbench_branches),"
        " (SELECT sum(tbalance) FROM pgbench_tellers),"
        " (SELECT count(*) FROM pgbench_history), (SELECT count(*) FROM events)")


def _source(root: Path, owner: OsUser, *, logical: bool) -> PgServer:
    server = make_pg_server(root, owner)
    if logical:
        with (server.pgdata / "postgresql.conf").open("a") as f:
            f.write("wal_level = logical\n")
    server.start()
    server.create_role("migrator", "migrate-pw")
    server.create_role("reader", "read-pw")
    with server.connect() as c:
        c.execute("ALTER ROLE migrator REPLICATION")     # not a superuser: owns its tables
        c.execute("CREATE DATABASE app OWNER migrator")
    with psycopg.connect(server.conninfo("migrator", "app"), autocommit=True) as c:
        c.execute("CREATE TABLE events (id bigserial PRIMARY KEY, note text)")
        c.execute("INSERT INTO events (note) SELECT 'old ' || g FROM generate_series(1, 300) g")
    return server


@pytest.fixture
def source(argon_tmp: Path, pg_user: OsUser) -> Iterator[PgServer]:
    server = _source(argon_tmp, pg_user, logical=True)
    try:
        yield server
    finally:
        server.stop()


def _pgbench(dsn: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([choose_install().bin("pgbench"), *args, dsn],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _until(what: str, check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _argon_objects_on(server: PgServer) -> list[Any]:
    with server.connect(dbname="app") as c:
        return c.execute("SELECT 'publication ' || pubname FROM pg_publication UNION ALL "
                         "SELECT 'slot ' || slot_name FROM pg_replication_slots").fetchall()


def test_a_live_source_under_writes_is_synced_then_cut_over_with_nothing_lost(
        argon_env: ArgonEnv, project: str, source: PgServer) -> None:
    dsn = source.tcp_dsn("migrator", "migrate-pw", "app")
    init = _pgbench(dsn, "-i", "-s", "2", "-q")
    assert init.wait(120) == 0, init.communicate()
    # a role without REPLICATION: refused, nothing made
    before = branches(argon_env, project)
    r = argon_env.api("POST", f"/projects/{project}/import", json={
        "source": {"connection_uri": source.tcp_dsn("reader", "read-pw", "app")},
        "branch": {"name": "nope"}, "sync": True})
    assert r.status_code == 400 and "REPLICATION" in r.json()["message"], r.text
    assert branches(argon_env, project) == before

    # writes all along: pgbench's tpcb-like transactions and a thread inserting events
    load = _pgbench(dsn, "-c", "2", "-j", "2", "-T", "25", "-b", "tpcb-like", "-n")
    stop = threading.Event()
    inserted = [0]

    def insert() -> None:
        with psycopg.connect(dsn, autocommit=True) as c:
            while not stop.is_set():
                c.execute("INSERT INTO events (note) VALUES ('live')")
                inserted[0] += 1
                time.sleep(0.01)

    writer = threading.Thread(target=insert, daemon=True)
    writer.start()
    try:
        res = argon_env.cli("import", dsn, "--project-id", project, "--branch", "synced",
                            "--sync")
        assert "subscription argon_import_" in res.stderr, res
        assert "argon import --cutover" in res.stdout and "no compute restarted" in res.stdout
        bid = branches(argon_env, project)["synced"]

        def streaming() -> bool:
            st = argon_env.cli_json("import", "--status", "--project-id", project,
                                    "--branch", "synced")
            return bool(st["state"] == "streaming" and st["streaming"])
        _until("the initial copy", streaming)
        st = argon_env.api("GET", f"/projects/{project}/branches/{bid}/import").json()
        assert st["publication_made_by_argon"] is True and st["tables_ready"] == 5, st
        assert st["source"]["port"] == str(source.port) and "password" not in str(st)
        assert isinstance(st["lag_bytes"], int) and st["applied_lsn"], st
        assert load.wait(120) == 0, load.communicate()
    finally:
        stop.set()
        writer.join(10)
    assert inserted[0] > 50

    out = argon_env.cli_json("import", "--cutover", "--project-id", project,
                             "--branch", "synced")
    assert out["mismatched"] == [], out
    counts = {t["table"]: (t["source_rows"], t["target_rows"]) for t in out["tables"]}
    assert counts["events"] == (300 + inserted[0],) * 2
    assert counts["pgbench_accounts"] == (200000, 200000)
    assert counts["pgbench_history"][0] > 100, counts
    assert out["sequences"]["public.events_id_seq"] == 300 + inserted[0]
    assert out["publication_dropped"] is True

    dbs = argon_env.api("GET", f"/projects/{project}/branches/{bid}/databases").json()
    owner = next(d["owner_name"] for d in dbs["databases"] if d["name"] == "app")
    r = argon_env.api("GET", f"/projects/{project}/connection_uri", params={
        "branch_id": bid, "database_name": "app", "role_name": owner})
    assert r.status_code == 200, r.text
    with psycopg.connect(dsn) as src, argon_env.connect(r.json()["uri"]) as dst:
        sums = src.execute(SUMS).fetchone()
        assert sums is not None and sums[0] == sums[1] == sums[2]  # pgbench's invariant
        assert dst.execute(SUMS).fetchone() == sums
        # the sequence was advanced: the branch's next insert does not collide
        row = dst.execute("INSERT INTO events (note) VALUES ('after') RETURNING id").fetchone()
        assert row == (300 + inserted[0] + 1,)
        dst.commit()
        assert dst.execute("SELECT count(*) FROM pg_subscription").fetchone() == (0,)
    assert _argon_objects_on(source) == []          # slot and publication gone
    r = argon_env.api("GET", f"/projects/{project}/branches/{bid}/import")
    assert r.status_code == 404, r.text


def test_a_source_without_logical_wal_level_is_refused_with_nothing_made(
        argon_env: ArgonEnv, project: str, argon_tmp: Path, pg_user: OsUser) -> None:
    server = _source(argon_tmp, pg_user, logical=False)
    try:
        before = branches(argon_env, project)
        r = argon_env.api("POST", f"/projects/{project}/import", json={
            "source": {"connection_uri": server.tcp_dsn("migrator", "migrate-pw", "app")},
            "branch": {"name": "nope"}, "sync": True})
        assert r.status_code == 400, r.text
        assert "wal_level = replica" in r.json()["message"], r.text
        assert "wal_level = logical" in r.json()["message"], r.text
        res = argon_env.cli("import", server.tcp_dsn("migrator", "migrate-pw", "app"),
                            "--project-id", project, "--sync", check=False)
        assert res.returncode == 1 and "wal_level" in res.stderr, res
        assert branches(argon_env, project) == before
        assert _argon_objects_on(server) == []
    finally:
        server.stop()


def test_a_publication_of_the_users_is_used_and_kept(argon_env: ArgonEnv, project: str,
                                                    source: PgServer) -> None:
    dsn = source.tcp_dsn("migrator", "migrate-pw", "app")
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE PUBLICATION mine FOR TABLE events")
    r = argon_env.api("POST", f"/projects/{project}/import", json={
        "source": {"connection_uri": dsn}, "branch": {"name": "nosuch"}, "sync": True,
        "publication": "nosuch"})
    assert r.status_code == 400 and "'nosuch' does not exist" in r.json()["message"], r.text
    assert "nosuch" not in branches(argon_env, project)
    r = argon_env.api("POST", f"/projects/{project}/import", json={
        "source": {"connection_uri": dsn}, "branch": {"name": "mine"}, "sync": True,
        "publication": "mine"})
    assert r.status_code == 201, r.text
    assert r.json()["sync"]["publication_made_by_argon"] is False
    bid = r.json()["branch_id"]
    status = f"/projects/{project}/branches/{bid}/import"
    _until("the initial copy", lambda: argon_env.api("GET", status).json()["state"]
           == "streaming")
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("INSERT INTO events (note) SELECT 'late' FROM generate_series(1, 20)")
    r = argon_env.api("POST", status + "/cutover", json={"timeout_seconds": 120})
    assert r.status_code == 200, r.text
    assert r.json()["tables"] == [{"schema": "public", "table": "events",
                                   "source_rows": 320, "target_rows": 320}]
    assert r.json()["publication_dropped"] is False
    assert _argon_objects_on(source) == [("publication mine",)]   # the user's, kept
