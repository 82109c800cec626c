"""Restore, reset from parent, protection, expiry, schema-only branches and schema diff."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fixtures.argon_env import ArgonEnv
from tests.integration.core.helpers import connect, create_branch, new_project, uri_for


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _count(env: ArgonEnv, pid: str, bid: str, table: str = "t") -> int:
    with connect(env, pid, bid) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]


@pytest.fixture(scope="module")
def project(argon_env: ArgonEnv) -> dict[str, Any]:
    created = new_project(argon_env, "restore")
    pid, main = created["project"]["id"], created["branch"]["id"]
    with connect(argon_env, pid, main) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t SELECT g, 'main' FROM generate_series(1, 100) g")
    return {"pid": pid, "main": main}


def test_restore_own_past_keeps_id_and_host_and_preserves_old_state(
        argon_env: ArgonEnv, project: dict[str, Any]) -> None:
    env, pid, main = argon_env, project["pid"], project["main"]
    dev = create_branch(env, pid, "restore-dev", parent_id=main)
    bid, host = dev["branch"]["id"], dev["endpoints"][0]["host"]
    uri_before = uri_for(env, pid, bid)
    with connect(env, pid, bid) as conn:
        conn.execute("INSERT INTO t VALUES (101, 'good')")
        good = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]  # type: ignore[index]
        conn.execute("DELETE FROM t WHERE id <= 50")   # the mistake
    session = connect(env, pid, bid)
    r = env.api("POST", f"/projects/{pid}/branches/{bid}/restore", json={
        "source_branch_id": bid, "source_lsn": good})
    assert r.status_code == 400 and "preserve_under_name" in r.json()["message"]
    r = env.api("POST", f"/projects/{pid}/branches/{bid}/restore", json={
        "source_branch_id": bid, "source_lsn": good, "preserve_under_name": "dev-before"})
    assert r.status_code == 200, r.text
    restored = r.json()["branch"]
    assert restored["id"] == bid and restored["name"] == "restore-dev"
    assert restored["last_reset_at"]
    # the old session was ended; the same connection string now shows the restored state
    with pytest.raises(Exception):
        session.execute("SELECT 1")
    assert uri_for(env, pid, bid) == uri_before
    eps = env.api("GET", f"/projects/{pid}/branches/{bid}/endpoints").json()["endpoints"]
    assert [e["host"] for e in eps] == [host]
    assert _count(env, pid, bid) == 101
    branches = env.api("GET", f"/projects/{pid}/branches").json()["branches"]
    kept = next(b for b in branches if b["name"] == "dev-before")
    assert restored["parent_id"] == kept["id"]
    r = env.api("POST", f"/projects/{pid}/branches/{kept['id']}/endpoints".replace(
        f"/branches/{kept['id']}/endpoints", "/endpoints"),
        json={"endpoint": {"branch_id": kept["id"], "type": "read_write"}})
    assert r.status_code == 201, r.text
    assert _count(env, pid, kept["id"]) == 51   # the old (mistaken) state


def test_reset_from_parent_with_the_cli(argon_env: ArgonEnv, project: dict[str, Any]) -> None:
    env, pid, main = argon_env, project["pid"], project["main"]
    pr = create_branch(env, pid, "preview-1", parent_id=main)["branch"]
    with connect(env, pid, pr["id"]) as conn:
        conn.execute("DELETE FROM t")
    with connect(env, pid, main) as conn:
        conn.execute("INSERT INTO t VALUES (500, 'main later')")
    env.cli("branches", "reset", "preview-1", "--parent", "--project-id", pid)
    assert _count(env, pid, pr["id"]) == _count(env, pid, main)
    with connect(env, pid, pr["id"]) as conn:
        assert conn.execute("SELECT v FROM t WHERE id = 500").fetchone() == ("main later",)
    after = env.api("GET", f"/projects/{pid}/branches/{pr['id']}").json()["branch"]
    assert after["parent_id"] == main and after["name"] == "preview-1"


def test_protected_branch_refuses_delete_reset_restore(argon_env: ArgonEnv,
                                                        project: dict[str, Any]) -> None:
    env, pid, main = argon_env, project["pid"], project["main"]
    r = env.api("POST", f"/projects/{pid}/branches", json={
        "branch": {"name": "guarded", "parent_id": main, "protected": True}})
    assert r.status_code == 201, r.text
    bid = r.json()["branch"]["id"]
    for method, path, body in [
        ("DELETE", f"/projects/{pid}/branches/{bid}", None),
        ("POST", f"/projects/{pid}/branches/{bid}/restore", {"source_branch_id": main}),
    ]:
        r = env.api(method, path, json=body)
        assert r.status_code == 409 and "protected" in r.json()["message"], r.text
    res = env.cli("branches", "reset", "guarded", "--parent", "--project-id", pid, check=False)
    assert res.returncode != 0 and "protected" in res.stderr


def test_expired_branch_is_deleted_with_its_compute(argon_env: ArgonEnv,
                                                    project: dict[str, Any]) -> None:
    env, pid, main = argon_env, project["pid"], project["main"]
    r = env.api("POST", f"/projects/{pid}/branches", json={
        "branch": {"name": "short-lived", "parent_id": main,
                   "expires_at": _iso(datetime.now(UTC) + timedelta(seconds=3))},
        "endpoints": [{"type": "read_write"}]})
    assert r.status_code == 201, r.text
    bid = r.json()["branch"]["id"]
    assert _count(env, pid, bid) > 0
    deadline = time.monotonic() + 30
    while env.api("GET", f"/projects/{pid}/branches/{bid}").status_code != 404:
        assert time.monotonic() < deadline, "the expired branch was not deleted"
        time.sleep(0.5)
    eps = env.api("GET", f"/projects/{pid}/endpoints").json()["endpoints"]
    assert all(e["branch_id"] != bid for e in eps)
    r = env.api("POST", f"/projects/{pid}/branches", json={
        "branch": {"parent_id": main, "expires_at": _iso(datetime.now(UTC) - timedelta(hours=1))}})
    assert r.status_code == 400 and "in the past" in r.json()["message"]


def test_schema_only_branch_and_schema_diff(argon_env: ArgonEnv,
                                            project: dict[str, Any]) -> None:
    env, pid, main = argon_env, project["pid"], project["main"]
    r = env.api("POST", f"/projects/{pid}/branches", json={
        "branch": {"name": "shape", "parent_id": main, "init_source": "schema-only"},
        "endpoints": [{"type": "read_write"}]})
    assert r.status_code == 201, r.text
    shape = r.json()["branch"]
    assert shape["init_source"] == "schema-only"
    assert _count(env, pid, shape["id"]) == 0
    with connect(env, pid, shape["id"]) as conn:
        conn.execute("ALTER TABLE t ADD COLUMN added_in_pr int")
    r = env.api("GET", f"/projects/{pid}/branches/{shape['id']}/compare_schema",
                params={"db_name": "neondb"})
    assert r.status_code == 200, r.text
    diff = r.json()["diff"]
    assert "+    added_in_pr integer" in diff and diff.startswith("--- main/neondb")
    out = env.cli("branches", "schema-diff", "main", "shape", "--project-id", pid).stdout
    assert "+    added_in_pr integer" in out
    r = env.api("GET", f"/projects/{pid}/branches/{main}/compare_schema",
                params={"db_name": "neondb", "base_branch_id": main})
    assert r.status_code == 409
