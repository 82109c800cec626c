"""A branch delete and a restore write their change in the same commit as their
operation's end: when that commit fails (a metadata write refused, as on a full disk),
the branch is left as it was, whole and usable, and its operation says it failed; a
retry then succeeds.  Before, the change was committed first and the operation after,
so the same failure deleted (or restored) the branch while reporting an error.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.fixtures.argon_env import ArgonEnv
from tests.integration.core.helpers import connect, create_branch, new_project


@contextmanager
def refused_finish(env: ArgonEnv, action: str) -> Iterator[None]:
    """While inside, Argon's metadata refuses to mark an ``action`` operation finished."""
    if not env.metadata_url.startswith("sqlite:///"):
        pytest.skip("the refused write is a SQLite trigger; this Argon keeps its metadata "
                    "elsewhere")
    db = sqlite3.connect(env.metadata_url.removeprefix("sqlite:///"), timeout=30)
    try:
        db.execute(f"CREATE TRIGGER refuse_finish BEFORE UPDATE ON operations "
                   f"WHEN NEW.status = 'finished' AND NEW.action = '{action}' "
                   f"BEGIN SELECT RAISE(ABORT, 'metadata write refused'); END")
        db.commit()
        yield
    finally:
        db.execute("DROP TRIGGER IF EXISTS refuse_finish")
        db.commit()
        db.close()


def _values(env: ArgonEnv, pid: str, bid: str) -> list[str]:
    with connect(env, pid, bid) as conn:
        return [r[0] for r in conn.execute("SELECT v FROM t ORDER BY v").fetchall()]


def _last_status(env: ArgonEnv, pid: str, bid: str, action: str) -> str:
    ops = env.api("GET", f"/projects/{pid}/operations").json()["operations"]
    mine = [o for o in ops if o["branch_id"] == bid and o["action"] == action]
    return str(max(mine, key=lambda o: o["created_at"])["status"])


@pytest.fixture(scope="module")
def project(argon_env: ArgonEnv) -> dict[str, Any]:
    created = new_project(argon_env, "operation-records")
    pid, main = created["project"]["id"], created["branch"]["id"]
    with connect(argon_env, pid, main) as conn:
        conn.execute("CREATE TABLE t (v text)")
        conn.execute("INSERT INTO t VALUES ('main')")
    return {"pid": pid, "main": main}


def test_a_delete_whose_record_fails_leaves_the_branch_whole(
        argon_env: ArgonEnv, project: dict[str, Any]) -> None:
    env, pid = argon_env, project["pid"]
    bid = create_branch(env, pid, "delete-refused", parent_id=project["main"])["branch"]["id"]
    with connect(env, pid, bid) as conn:
        conn.execute("INSERT INTO t VALUES ('child')")
    with refused_finish(env, "delete_timeline"):
        r = env.api("DELETE", f"/projects/{pid}/branches/{bid}")
        assert r.status_code == 500 and "request id" in r.json()["message"], r.text
    got = env.api("GET", f"/projects/{pid}/branches/{bid}")
    assert got.status_code == 200, got.text
    assert got.json()["branch"]["current_state"] == "ready"
    assert _last_status(env, pid, bid, "delete_timeline") == "failed"
    assert _values(env, pid, bid) == ["child", "main"]   # its compute wakes on its data

    r = env.api("DELETE", f"/projects/{pid}/branches/{bid}")
    assert r.status_code == 200, r.text
    assert env.api("GET", f"/projects/{pid}/branches/{bid}").status_code == 404


def test_a_restore_whose_record_fails_leaves_the_branch_on_its_own_data(
        argon_env: ArgonEnv, project: dict[str, Any]) -> None:
    env, pid, main = argon_env, project["pid"], project["main"]
    bid = create_branch(env, pid, "restore-refused", parent_id=main)["branch"]["id"]
    with connect(env, pid, bid) as conn:
        conn.execute("DELETE FROM t")
        conn.execute("INSERT INTO t VALUES ('own')")
    body = {"source_branch_id": main}
    with refused_finish(env, "create_timeline"):
        r = env.api("POST", f"/projects/{pid}/branches/{bid}/restore", json=body)
        assert r.status_code == 500, r.text
        message = r.json()["message"]   # what happened and where to look, not the SQL
        assert "failed and was rolled back" in message and "request id" in message, message
        assert "UPDATE" not in message and "sqlite" not in message, message
    got = env.api("GET", f"/projects/{pid}/branches/{bid}").json()["branch"]
    assert got["current_state"] == "ready"
    assert _last_status(env, pid, bid, "create_timeline") == "failed"
    assert _values(env, pid, bid) == ["own"]   # not the source's: nothing was swapped

    r = env.api("POST", f"/projects/{pid}/branches/{bid}/restore", json=body)
    assert r.status_code == 200, r.text
    assert _values(env, pid, bid) == ["main"]
