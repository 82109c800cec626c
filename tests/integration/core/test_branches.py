"""Branches: the child sees the parent's data, and the two diverge independently."""

from __future__ import annotations

import subprocess
import threading
import time

import psycopg
import pytest

from tests.fixtures.argon_env import ArgonEnv
from tests.integration.core.helpers import (connect, create_branch, new_project, plain_uri,
                                           uri_for)


@pytest.fixture(scope="module")
def project(argon_env: ArgonEnv) -> dict:
    return new_project(argon_env, "branching")


def test_new_project_has_neon_defaults(argon_env: ArgonEnv, project: dict) -> None:
    assert project["branch"]["name"] == "main" and project["branch"]["default"] is True
    assert [d["name"] for d in project["databases"]] == ["neondb"]
    assert [r["name"] for r in project["roles"]] == ["neondb_owner"]
    assert project["roles"][0]["password"].startswith("npg_")
    assert [e["type"] for e in project["endpoints"]] == ["read_write"]
    with psycopg.connect(project["connection_uris"][0]["connection_uri"]) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (
            "neondb_owner", "neondb")


def test_child_has_parent_data_and_writes_stay_on_their_side(argon_env: ArgonEnv,
                                                             project: dict) -> None:
    pid, main = project["project"]["id"], project["branch"]["id"]
    with connect(argon_env, pid, main) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO items SELECT g, 'parent' FROM generate_series(1, 100) g")
    child = create_branch(argon_env, pid, "feature/one")["branch"]
    assert child["parent_id"] == main and child["parent_lsn"]
    with connect(argon_env, pid, child["id"]) as c, connect(argon_env, pid, main) as p:
        assert c.execute("SELECT count(*) FROM items").fetchone() == (100,)
        c.execute("INSERT INTO items VALUES (1000, 'child')")
        p.execute("INSERT INTO items VALUES (2000, 'parent-later')")
        assert c.execute("SELECT count(*) FROM items WHERE id = 2000").fetchone() == (0,)
        assert p.execute("SELECT count(*) FROM items WHERE id = 1000").fetchone() == (0,)
        # each branch runs on its own Postgres timeline (first 8 hex digits of a WAL name)
        wal = "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"
        tl_child, tl_parent = c.execute(wal).fetchone()[0], p.execute(wal).fetchone()[0]
    assert int(tl_child, 16) > int(tl_parent, 16)


def test_branch_of_a_branch(argon_env: ArgonEnv, project: dict) -> None:
    pid, main = project["project"]["id"], project["branch"]["id"]
    with connect(argon_env, pid, main) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS chain (step text)")
        conn.execute("INSERT INTO chain VALUES ('main')")
    b1 = create_branch(argon_env, pid, "chain-1")["branch"]
    with connect(argon_env, pid, b1["id"]) as conn:
        conn.execute("INSERT INTO chain VALUES ('b1')")
    b2 = create_branch(argon_env, pid, "chain-2", parent_id=b1["id"])["branch"]
    assert b2["parent_id"] == b1["id"]
    with connect(argon_env, pid, b2["id"]) as conn:
        rows = [r[0] for r in conn.execute("SELECT step FROM chain ORDER BY step")]
    assert rows == ["b1", "main"]


def test_branch_from_a_stopped_parent(argon_env: ArgonEnv, project: dict) -> None:
    pid = project["project"]["id"]
    src = create_branch(argon_env, pid, "to-stop")
    with connect(argon_env, pid, src["branch"]["id"]) as conn:
        conn.execute("CREATE TABLE stopped (x int)")
        conn.execute("INSERT INTO stopped VALUES (42)")
        conn.execute("CREATE UNLOGGED TABLE scratch (x int)")
        conn.execute("INSERT INTO scratch VALUES (1)")
    ep = src["endpoints"][0]["id"]
    r = argon_env.api("POST", f"/projects/{pid}/endpoints/{ep}/suspend")
    assert r.status_code == 200, r.text
    assert argon_env.api("GET", f"/projects/{pid}/endpoints/{ep}").json()["endpoint"][
        "current_state"] == "idle"
    child = create_branch(argon_env, pid, "from-stopped", parent_id=src["branch"]["id"])
    with connect(argon_env, pid, child["branch"]["id"]) as conn:
        assert conn.execute("SELECT x FROM stopped").fetchall() == [(42,)]
        # unlogged tables are empty in a branch, as in Neon
        assert conn.execute("SELECT count(*) FROM scratch").fetchone() == (0,)


def test_branch_under_pgbench_write_load_keeps_the_tpcb_invariant(argon_env: ArgonEnv,
                                                                  project: dict) -> None:
    from argon.pg import choose_install

    pid, main = project["project"]["id"], project["branch"]["id"]
    uri = plain_uri(uri_for(argon_env, pid, main))
    pgbench = choose_install().bin("pgbench")
    subprocess.run([pgbench, "-i", "-s", "1", "-q", uri], check=True, capture_output=True)
    load = subprocess.Popen([pgbench, "-c", "4", "-T", "12", "-n", uri],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(3)
        child = create_branch(argon_env, pid, "under-load")["branch"]
    finally:
        out, err = load.communicate(timeout=60)
    assert load.returncode == 0, err
    with connect(argon_env, pid, child["id"]) as conn:
        a, t, b, h = conn.execute(
            "SELECT (SELECT sum(abalance) FROM pgbench_accounts),"
            " (SELECT sum(tbalance) FROM pgbench_tellers),"
            " (SELECT sum(bbalance) FROM pgbench_branches),"
            " (SELECT count(*) FROM pgbench_history)").fetchone()
    assert a == t == b
    assert h > 0, "the branch was taken while pgbench was writing"


def test_parallel_branch_creations_all_succeed(argon_env: ArgonEnv, project: dict) -> None:
    pid = project["project"]["id"]
    results: list[int] = []

    def make(i: int) -> None:
        r = argon_env.api("POST", f"/projects/{pid}/branches",
                          json={"branch": {"name": f"parallel-{i}"}})
        results.append(r.status_code)

    threads = [threading.Thread(target=make, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results) == [201] * 4
