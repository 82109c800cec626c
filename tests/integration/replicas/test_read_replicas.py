"""Read replicas (read_only endpoints) as a Neon user drives them, on a real Argon:
hot standbys that read the branch's data, stream from its primary while it runs and
follow the timeline's WAL when it is suspended, killed or restored."""

from __future__ import annotations

import os
import subprocess
import time

import httpx
import psycopg
import pytest

from argon.pg import choose_install
from tests.fixtures.common import no_current_pgbouncer
from tests.integration.replicas.conftest import Project, kill9, wait_for

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.skipif(os.geteuid() != 0, reason="kills computes run by the Postgres "
                       "account and reads their data directories: needs root"),
]


def _count(conn: psycopg.Connection, table: str = "t") -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def _seed_rows(p: Project, n: int = 100) -> None:
    with p.connect() as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
        c.execute("INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, %s) g", (n,))


def test_a_replica_answers_the_parents_rows_and_refuses_writes_with_25006(
        project: Project) -> None:
    _seed_rows(project)
    ep = project.add_replica()
    assert ep["host"] != project.endpoint(project.primary)["host"]
    assert project.state(ep["id"]) == "active"
    with project.connect(ep["id"]) as c:
        assert _count(c) == 100
        assert c.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction) as err:
            c.execute("INSERT INTO t VALUES (1000, 'no')")
        assert err.value.sqlstate == "25006"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            c.execute("CREATE TABLE nope (x int)")
    # DDL and rows written on the primary afterwards reach the replica
    with project.connect() as c:
        c.execute("ALTER TABLE t ADD COLUMN extra int DEFAULT 7")
        c.execute("CREATE TABLE later AS SELECT 1 AS one")
    with project.connect(ep["id"]) as c:
        wait_for(lambda: c.execute("SELECT to_regclass('later') IS NOT NULL").fetchone()[0],
                 what="DDL replayed")
        assert c.execute("SELECT extra FROM t WHERE id = 1").fetchone() == (7,)


def _pgbench(uri: str, *args: str, **kw: object) -> subprocess.Popen[bytes]:
    """Postgres' own pgbench through the proxy (the embedded install's libpq has no TLS:
    the password goes in the clear over loopback, which the proxy accepts)."""
    pgbench = choose_install().bin("pgbench")
    uri = uri.partition("?")[0] + "?sslmode=disable"
    return subprocess.Popen([pgbench, *args, uri], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, **kw)  # type: ignore[call-overload]


def test_new_rows_reach_the_replica_within_a_second_under_pgbench_write_load(
        project: Project) -> None:
    uri = project.uri()
    init = _pgbench(uri, "-i", "-s", "1", "-q")
    out, _ = init.communicate(timeout=300)
    assert init.returncode == 0, out.decode()
    with project.connect() as c:
        c.execute("CREATE TABLE marks (id int PRIMARY KEY)")
    ep = project.add_replica()
    with project.connect(ep["id"]) as c:
        assert _count(c, "pgbench_accounts") == 100000
    load = _pgbench(uri, "-n", "-c", "2", "-j", "1", "-T", "40", "-R", "150")
    delays: list[float] = []
    try:
        time.sleep(2)
        with project.connect() as w, project.connect(ep["id"]) as r:
            for i in range(20):
                w.execute("INSERT INTO marks VALUES (%s)", (i,))
                committed = time.monotonic()
                while not r.execute("SELECT 1 FROM marks WHERE id = %s", (i,)).fetchone():
                    assert time.monotonic() - committed < 10, f"mark {i} never arrived"
                    time.sleep(0.005)
                delays.append(time.monotonic() - committed)
                time.sleep(0.3)
            assert load.poll() is None, "pgbench stopped early: " + str(load.stdout)
            lag = project.endpoint(ep["id"])
    finally:
        load.terminate()
        load.communicate(timeout=60)
    assert max(delays) < 1.0, f"replica visibility delays: {sorted(delays)}"
    # the lag Argon reports is the same figure, under one second too
    assert lag["replication_lag_seconds"] is not None and lag["replication_lag_seconds"] < 1.0
    assert lag["replication_lag_bytes"] >= 0
    metrics = httpx.get(f"http://127.0.0.1:{project.env.api_port}/metrics", timeout=30).text
    assert f'argon_replica_lag_seconds{{endpoint_id="{ep["id"]}"}}' in metrics
    assert f'argon_replica_lag_bytes{{endpoint_id="{ep["id"]}"}}' in metrics


def test_a_replica_of_a_suspended_primary_answers_with_the_newest_committed_rows(
        project: Project) -> None:
    _seed_rows(project, 10)
    ep = project.add_replica()
    # 1. the replica runs while the primary is suspended
    with project.connect() as c:
        c.execute("INSERT INTO t VALUES (11, 'before suspend')")
    project.action(project.primary, "suspend")
    assert project.state(project.primary) == "idle"
    with project.connect(ep["id"]) as c:
        wait_for(lambda: _count(c) == 11, what="row 11 on the replica")
    assert project.state(project.primary) == "idle", "the replica woke its primary"
    # 2. both suspended, the primary writes (a partial WAL segment only, never archived)
    #    and stops cleanly, then only the replica wakes
    project.action(ep["id"], "suspend")
    with project.connect() as c:
        c.execute("INSERT INTO t VALUES (12, 'while the replica slept')")
    project.action(project.primary, "suspend")
    with project.connect(ep["id"]) as c:
        assert _count(c) == 12
        assert c.execute("SELECT note FROM t WHERE id = 12").fetchone() == (
            "while the replica slept",)
    assert project.state(project.primary) == "idle"
    lag = project.endpoint(ep["id"])
    assert lag["replication_lag_bytes"] == 0 and lag["replication_lag_seconds"] == 0
    # 2b. the same across WAL segments: full ones come from the archive, and the last
    #     (partial) one, which the replica never had, from the stopped primary's pg_wal
    project.action(ep["id"], "suspend")
    seeded = project.replica_dir(ep["id"]).stat().st_ino
    segment = "SELECT pg_walfile_name(pg_current_wal_lsn())"
    with project.connect() as c:
        first = c.execute(segment).fetchone()
        c.execute("CREATE TABLE big AS SELECT g AS id, md5(g::text) AS pad "
                  "FROM generate_series(1, 300000) g")
        c.execute("INSERT INTO t VALUES (20, 'in a segment the replica never saw')")
        assert c.execute(segment).fetchone() != first, "the WAL stayed in one segment"
    project.action(project.primary, "suspend")
    with project.connect(ep["id"]) as c:
        # fed from the WAL, not re-seeded (a seed is the fallback of a replica that
        # cannot catch up)
        assert project.replica_dir(ep["id"]).stat().st_ino == seeded
        assert _count(c, "big") == 300000
        assert c.execute("SELECT note FROM t WHERE id = 20").fetchone() == (
            "in a segment the replica never saw",)
    # 3. the primary comes back: the replica streams from it again
    with project.connect() as c:
        c.execute("INSERT INTO t VALUES (13, 'after the wake')")
    with project.connect(ep["id"]) as c:
        wait_for(lambda: _count(c) == 14, what="row 13 on the replica")


def test_kill9_of_the_replica_and_of_the_primary(project: Project) -> None:
    _seed_rows(project, 10)
    ep = project.add_replica()
    replica_dir = project.replica_dir(ep["id"])
    primary_dir = project.timeline() / "pgdata"
    with project.connect(ep["id"]) as c:
        assert _count(c) == 10
    # the replica dies: the next connection (or the reconciler) brings it back
    kill9(replica_dir)
    with project.connect() as c:
        c.execute("INSERT INTO t VALUES (11, 'while the replica was dead')")
    with wait_for(lambda: project.connect(ep["id"]), what="replica back") as c:
        wait_for(lambda: _count(c) == 11, what="row 11 after the replica's crash")
    # the primary dies: the replica keeps answering, and follows it once it is back
    with project.connect(ep["id"]) as r:
        kill9(primary_dir)
        for _ in range(20):
            assert _count(r) == 11
            time.sleep(0.05)
        with wait_for(lambda: project.connect(), what="primary back") as w:
            w.execute("INSERT INTO t VALUES (12, 'after the primary crash')")
        wait_for(lambda: _count(r) == 12, what="row 12 after the primary's crash")


def test_a_reset_of_the_branch_reseeds_its_replica_keeping_id_and_host(
        project: Project) -> None:
    with project.connect() as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
        c.execute("INSERT INTO t VALUES (1, 'parent')")
    created = project.add_branch("dev")
    dev = created["branch"]["id"]
    ep = project.add_replica(dev)
    old_dir = project.replica_dir(ep["id"], dev)
    dev_primary = created["endpoints"][0]["id"]
    with psycopg.connect(project.uri(dev_primary), autocommit=True) as c:
        c.execute("INSERT INTO t VALUES (2, 'only on dev')")
    with project.connect(ep["id"]) as c:
        wait_for(lambda: _count(c) == 2, what="dev's row on its replica")
    reset = project.api("POST", f"/branches/{dev}/restore",
                        json={"source_branch_id": project.main})   # neonctl's reset
    assert reset.status_code == 200, reset.text
    project.settle(reset.json())
    after = project.endpoint(ep["id"])
    assert after["id"] == ep["id"] and after["host"] == ep["host"]
    with project.connect(ep["id"]) as c:
        assert c.execute("SELECT id FROM t ORDER BY id").fetchall() == [(1,)]
    assert not old_dir.exists(), "the old timeline's replica data was kept"
    assert project.replica_dir(ep["id"], dev).is_dir()


def test_two_replicas_on_one_branch_each_with_its_own_settings_and_lifecycle(
        project: Project) -> None:
    _seed_rows(project, 5)
    a = project.add_replica(autoscaling_limit_min_cu=0.25, autoscaling_limit_max_cu=1,
                            suspend_timeout_seconds=300)
    b = project.add_replica(suspend_timeout_seconds=-1)
    assert len({a["host"], b["host"], project.endpoint(project.primary)["host"]}) == 3
    assert a["autoscaling_limit_max_cu"] == 1 and a["suspend_timeout_seconds"] == 300
    assert b["autoscaling_limit_max_cu"] == 0.25 and b["suspend_timeout_seconds"] == -1
    listed = project.api("GET", "/endpoints").json()["endpoints"]
    assert sorted(e["type"] for e in listed) == ["read_only", "read_only", "read_write"]
    on_branch = project.api("GET", f"/branches/{project.main}/endpoints").json()["endpoints"]
    assert {e["id"] for e in on_branch} == {a["id"], b["id"], project.primary}
    with project.connect(a["id"]) as ca, project.connect(b["id"]) as cb:
        assert _count(ca) == _count(cb) == 5
        assert ca.execute("SHOW shared_buffers").fetchone() == ("512MB",)   # 1 CU
        assert cb.execute("SHOW shared_buffers").fetchone() == ("128MB",)   # 0.25 CU
    # update, suspend, start, restart, each alone
    r = project.api("PATCH", f"/endpoints/{b['id']}", json={"endpoint": {
        "autoscaling_limit_max_cu": 0.5}})
    assert r.status_code == 200, r.text
    with project.connect(b["id"]) as cb:
        assert cb.execute("SHOW shared_buffers").fetchone() == ("256MB",)
    project.action(a["id"], "suspend")
    assert project.state(a["id"]) == "idle" and project.state(b["id"]) == "active"
    project.action(a["id"], "start")
    assert project.state(a["id"]) == "active"
    project.action(b["id"], "restart")
    with project.connect(b["id"]) as cb:
        assert _count(cb) == 5
    # delete one: its data goes, the other keeps answering
    a_dir = project.replica_dir(a["id"])
    assert a_dir.is_dir()
    assert project.api("DELETE", f"/endpoints/{a['id']}").status_code == 200
    assert not a_dir.exists()
    assert project.api("GET", f"/endpoints/{a['id']}").status_code == 404
    with project.connect(b["id"]) as cb:
        assert _count(cb) == 5


def test_deleting_a_branch_deletes_its_replicas_and_their_data(project: Project) -> None:
    branch = project.add_branch("gone")["branch"]["id"]
    ep = project.add_replica(branch)
    data = project.replica_dir(ep["id"], branch)
    assert data.is_dir()
    assert project.api("DELETE", f"/branches/{branch}").status_code == 200
    assert not data.exists()
    assert project.api("GET", f"/endpoints/{ep['id']}").status_code == 404


def test_bad_input_is_refused_and_leaves_nothing_half_made(project: Project) -> None:
    before = project.api("GET", "/endpoints").json()["endpoints"]
    r = project.api("POST", "/endpoints", json={"endpoint": {"branch_id": project.main,
                                                             "type": "foo"}})
    assert r.status_code == 400 and r.json()["code"], r.text
    assert "type" in r.json()["message"]
    r = project.api("POST", "/endpoints", json={"endpoint": {"branch_id": "br-missing-123",
                                                             "type": "read_only"}})
    assert r.status_code == 404, r.text
    assert "br-missing-123" in r.json()["message"]
    r = project.api("POST", "/endpoints", json={"endpoint": {
        "branch_id": project.main, "type": "read_only", "autoscaling_limit_min_cu": 2,
        "autoscaling_limit_max_cu": 1}})
    assert r.status_code == 400, r.text
    assert project.api("GET", "/endpoints").json()["endpoints"] == before
    replicas = project.timeline() / "replicas"
    assert not replicas.exists() or not any(replicas.iterdir())


def test_a_replica_follows_a_restarted_primary(project: Project) -> None:
    _seed_rows(project, 3)
    ep = project.add_replica()
    with project.connect(ep["id"]) as r:
        project.action(project.primary, "restart")
        with project.connect() as w:
            w.execute("INSERT INTO t VALUES (4, 'after restart')")
        wait_for(lambda: _count(r) == 4, timeout=10, what="row 4 after a primary restart")


def test_a_small_replica_keeps_following_a_primary_that_grows(project: Project) -> None:
    """A hot standby needs at least its primary's max_connections: the replica (0.25 CU)
    starts with the primary's, and restarts by itself when the primary grows."""
    r = project.api("PATCH", f"/endpoints/{project.primary}", json={"endpoint": {
        "autoscaling_limit_min_cu": 0.25, "autoscaling_limit_max_cu": 1}})
    assert r.status_code == 200, r.text
    _seed_rows(project, 3)
    ep = project.add_replica(autoscaling_limit_max_cu=0.25)
    with project.connect(ep["id"]) as c:
        assert _count(c) == 3
        assert int(c.execute("SHOW max_connections").fetchone()[0]) >= 450
    seeded = project.replica_dir(ep["id"]).stat().st_ino
    r = project.api("PATCH", f"/endpoints/{project.primary}", json={"endpoint": {
        "autoscaling_limit_max_cu": 2}})
    assert r.status_code == 200, r.text
    with project.connect() as c:
        c.execute("INSERT INTO t VALUES (4, 'after the primary grew')")

    def replica_has_row_4() -> bool:
        with project.connect(ep["id"]) as c:
            return _count(c) == 4
    wait_for(replica_has_row_4, timeout=60, every=0.5, what="row 4 on the replica")
    with project.connect(ep["id"]) as c:
        assert int(c.execute("SHOW max_connections").fetchone()[0]) >= 901
    assert project.replica_dir(ep["id"]).stat().st_ino == seeded, "re-seeded, not followed"


@pytest.mark.skipif(no_current_pgbouncer() is not None, reason=str(no_current_pgbouncer()))
def test_a_replicas_pooled_host_reads_through_pgbouncer(project: Project) -> None:
    _seed_rows(project, 7)
    ep = project.add_replica()
    pooled = project.uri(ep["id"], pooled=True)
    assert pooled != project.uri(ep["id"])
    with psycopg.connect(pooled, autocommit=True, connect_timeout=60,
                         prepare_threshold=None) as c:
        assert _count(c) == 7
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            c.execute("DELETE FROM t")


def test_a_branch_made_with_only_a_replica_reads_its_parents_data(project: Project) -> None:
    _seed_rows(project, 9)
    (ep,) = project.add_branch("analytics", "read_only")["endpoints"]
    assert ep["type"] == "read_only"
    with project.connect(ep["id"]) as c:
        assert _count(c) == 9
