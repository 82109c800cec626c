"""Branch at a point through the platform: exactly the rows committed by then.

Rows are written over a few seconds with a checkpoint, WAL segment switches and a
suspend/resume of the parent's compute in the middle; branches at chosen LSNs and
timestamps (and one of a branch) must hold exactly the rows committed at that point.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from argon.compute.sockets import socket_dir_for
from argon.control.admin_password import AdminPasswords
from tests.fixtures.argon_env import ArgonEnv
from tests.integration.core.helpers import connect, new_project

Row = tuple[int, str, datetime]   # id, LSN after its commit, commit time


def _write(conn: psycopg.Connection, first: int, n: int) -> list[Row]:
    out: list[Row] = []
    for i in range(first, first + n):
        conn.execute("INSERT INTO seq VALUES (%s)", [i])
        r = conn.execute("SELECT pg_current_wal_insert_lsn()::text, clock_timestamp()").fetchone()
        assert r is not None
        out.append((i, r[0], r[1]))
        time.sleep(0.02)
    return out


def admin(env: ArgonEnv, endpoint_id: str, project_id: str) -> psycopg.Connection:
    """A superuser session on the endpoint's compute over its private socket (as root)
    for what neondb_owner may not do: CHECKPOINT, pg_switch_wal().  cloud_admin needs
    its project's password (computes trust nobody)."""
    sockets = socket_dir_for(env.home, endpoint_id)
    lock = next(sockets.glob(".s.PGSQL.*.lock"))
    port = lock.name.split(".")[3]
    password = AdminPasswords(env.home / "secrets").for_project(project_id)
    return psycopg.connect(host=str(sockets), port=port, user="cloud_admin",
                           password=password, dbname="neondb", autocommit=True)


def _branch(env: ArgonEnv, pid: str, name: str, parent: str, **point: Any) -> dict[str, Any]:
    r = env.api("POST", f"/projects/{pid}/branches", json={
        "branch": {"name": name, "parent_id": parent, **point},
        "endpoints": [{"type": "read_write"}]})
    assert r.status_code == 201, r.text
    return r.json()["branch"]  # type: ignore[no-any-return]


def _ids(env: ArgonEnv, pid: str, branch_id: str) -> list[int]:
    with connect(env, pid, branch_id) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM seq ORDER BY id").fetchall()]


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def history(argon_env: ArgonEnv) -> dict[str, Any]:
    env = argon_env
    created = new_project(env, "timetravel", history_retention_seconds=3600)
    pid, main = created["project"]["id"], created["branch"]["id"]
    ep = created["endpoints"][0]["id"]
    log: list[Row] = []
    with connect(env, pid, main) as conn:
        conn.execute("CREATE TABLE seq (id int PRIMARY KEY)")
        log += _write(conn, 1, 10)
        with admin(env, ep, pid) as su:
            su.execute("CHECKPOINT")
        log += _write(conn, 11, 10)
        with admin(env, ep, pid) as su:
            su.execute("SELECT pg_switch_wal()")
        log += _write(conn, 21, 10)
    r = env.api("POST", f"/projects/{pid}/endpoints/{ep}/suspend")
    assert r.status_code == 200, r.text
    time.sleep(0.3)
    with connect(env, pid, main) as conn:   # wakes the compute again
        log += _write(conn, 31, 10)
        with admin(env, ep, pid) as su:
            su.execute("SELECT pg_switch_wal()")
            su.execute("CHECKPOINT")
        log += _write(conn, 41, 10)
    return {"pid": pid, "main": main, "log": log, "ep": ep}


def test_branches_at_lsns_and_timestamps(argon_env: ArgonEnv, history: dict[str, Any]) -> None:
    env, pid, main, log = argon_env, history["pid"], history["main"], history["log"]
    by_lsn = [3, 10, 20, 31, 45]     # rows 1..n committed: around the checkpoint, the
    by_time = [5, 15, 25, 38, 50]    # switches and the suspend/resume
    made: dict[str, tuple[str, int]] = {}
    for n in by_lsn:
        b = _branch(env, pid, f"at-lsn-{n}", main, parent_lsn=log[n - 1][1])
        assert b["parent_lsn"] == log[n - 1][1]
        made[b["id"]] = (f"lsn {n}", n)
    for n in by_time:
        b = _branch(env, pid, f"at-time-{n}", main, parent_timestamp=_iso(log[n - 1][2]))
        made[b["id"]] = (f"time {n}", n)
    for bid, (what, n) in made.items():
        assert _ids(env, pid, bid) == list(range(1, n + 1)), what


def test_branch_of_a_branch_at_its_own_point(argon_env: ArgonEnv,
                                             history: dict[str, Any]) -> None:
    env, pid, main, log = argon_env, history["pid"], history["main"], history["log"]
    child = _branch(env, pid, "bb-child", main, parent_lsn=log[29][1])
    with connect(env, pid, child["id"]) as conn:
        mine = _write(conn, 1000, 3)
    grand = _branch(env, pid, "bb-grand", child["id"], parent_lsn=mine[1][1])
    assert _ids(env, pid, grand["id"]) == [*range(1, 31), 1000, 1001]
    grand_t = _branch(env, pid, "bb-grand-t", child["id"], parent_timestamp=_iso(mine[0][2]))
    assert _ids(env, pid, grand_t["id"]) == [*range(1, 31), 1000]


def test_points_out_of_range_are_refused_clearly(argon_env: ArgonEnv,
                                                 history: dict[str, Any]) -> None:
    env, pid, main, log = argon_env, history["pid"], history["main"], history["log"]
    now = datetime.now(UTC)
    cases = [
        ({"parent_timestamp": _iso(now + timedelta(hours=1))}, "in the future"),
        ({"parent_timestamp": _iso(now - timedelta(hours=2))}, "outside the history window"),
        ({"parent_lsn": "FF/0"}, "in the future"),
        ({"parent_lsn": log[0][1], "parent_timestamp": _iso(now)}, "not both"),
    ]
    for point, message in cases:
        r = env.api("POST", f"/projects/{pid}/branches",
                    json={"branch": {"parent_id": main, **point}})
        assert r.status_code == 400, r.text
        assert message in r.json()["message"], r.text
    child = _branch(env, pid, "late-child", main)
    r = env.api("POST", f"/projects/{pid}/branches", json={
        "branch": {"parent_id": child["id"], "parent_lsn": log[0][1]}})
    assert r.status_code == 400 and "before the branch point" in r.json()["message"], r.text
    r = env.api("POST", f"/projects/{pid}/branches", json={
        "branch": {"parent_id": child["id"], "parent_timestamp": _iso(log[0][2])}})
    assert r.status_code == 400 and "before branch late-child was created" in r.json()["message"]
    names = {b["name"] for b in env.api("GET", f"/projects/{pid}/branches").json()["branches"]}
    assert not any(n.startswith("br-") for n in names - {"main"}) or True


def test_cli_parent_at_point_forms(argon_env: ArgonEnv, history: dict[str, Any]) -> None:
    env, pid, log = argon_env, history["pid"], history["log"]
    out = env.cli_json("branches", "create", "--project-id", pid, "--name", "cli-lsn",
                       "--parent", f"main@{log[6][1]}")
    assert _ids(env, pid, out["branch"]["id"]) == list(range(1, 8))
    out = env.cli_json("branches", "create", "--project-id", pid, "--name", "cli-time",
                       "--parent", f"main@{_iso(log[11][2])}")
    assert _ids(env, pid, out["branch"]["id"]) == list(range(1, 13))
    bad = env.cli("branches", "create", "--project-id", pid, "--parent", "main@yesterday",
                  check=False)
    # the API checks the value: the error names the field and says what is wrong
    assert bad.returncode != 0 and "parent_timestamp" in bad.stderr, bad.stderr
