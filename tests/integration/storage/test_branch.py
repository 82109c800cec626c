"""Branching real Postgres data directories (PostgreSQL 18, the embedded install)."""

from __future__ import annotations

import psycopg
import pytest

from argon.errors import Conflict, Unavailable
from argon.storage import TimelineState
from argon.storage.conf import CONF_NAME
from tests.fixtures.storage import pg_timeline, running
from tests.integration.storage.conftest import StorageEnv


def _seed(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    conn.execute("INSERT INTO t SELECT g, 'parent' FROM generate_series(1, 1000) g")
    conn.execute("CREATE UNLOGGED TABLE scratch (id int)")
    conn.execute("INSERT INTO scratch SELECT generate_series(1, 100)")


def _count(conn: psycopg.Connection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_branch_of_running_parent_has_its_data_and_diverges(env18: StorageEnv) -> None:
    env18.init("main")
    main = env18.start("main")
    with main.connect() as conn:
        _seed(conn)
        parent_tli = pg_timeline(conn)
        # Clients of the parent keep working while the branch is taken.
        env18.branch("dev", "main")
        conn.execute("INSERT INTO t VALUES (5000, 'after-branch')")

    manifest = env18.storage.manifest("dev")
    assert manifest.state is TimelineState.READY
    assert manifest.parent_id == "main" and manifest.branch_point is not None
    assert manifest.branch_point.pg_timeline == parent_tli
    assert manifest.recovery_pending

    dev = env18.start("dev")  # waits for promotion, then recovery_finished
    with dev.connect() as conn:
        assert _count(conn, "SELECT count(*) FROM t") == 1000
        assert _count(conn, "SELECT count(*) FROM scratch") == 0  # unlogged: empty
        assert pg_timeline(conn) != parent_tli
        conn.execute("INSERT INTO t VALUES (6000, 'child-only')")
        assert _count(conn, "SELECT count(*) FROM t WHERE id = 5000") == 0
    with main.connect() as conn:
        assert _count(conn, "SELECT count(*) FROM t WHERE id = 6000") == 0
        assert _count(conn, "SELECT count(*) FROM t WHERE id = 5000") == 1
        assert _count(conn, "SELECT count(*) FROM scratch") == 100

    conf = (env18.storage.pgdata("dev") / CONF_NAME).read_text()
    assert "recovery_target" not in conf.replace("recovery_target_", "")
    assert "recovery_target =" not in conf
    assert not env18.storage.manifest("dev").recovery_pending
    # A restart after the first recovery is an ordinary start on the branch's timeline.
    env18.stop("dev")
    dev = env18.start("dev")
    with dev.connect() as conn:
        assert _count(conn, "SELECT count(*) FROM t WHERE id = 6000") == 1
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)


def test_branch_of_a_branch(env18: StorageEnv) -> None:
    env18.init("main")
    main = env18.start("main")
    with main.connect() as conn:
        _seed(conn)
        main_tli = pg_timeline(conn)
    env18.branch("dev", "main")
    dev = env18.start("dev")
    with dev.connect() as conn:
        conn.execute("INSERT INTO t VALUES (7000, 'dev')")
        dev_tli = pg_timeline(conn)
    env18.branch("feature", "dev")
    with dev.connect() as conn:
        conn.execute("INSERT INTO t VALUES (7001, 'dev-after')")
    feature = env18.start("feature")
    with feature.connect() as conn:
        assert _count(conn, "SELECT count(*) FROM t WHERE id = 7000") == 1
        assert _count(conn, "SELECT count(*) FROM t WHERE id = 7001") == 0
        tli = pg_timeline(conn)
    assert tli not in (main_tli, dev_tli)
    point = env18.storage.manifest("feature").branch_point
    assert point is not None and point.pg_timeline == dev_tli


@pytest.fixture(params=[18, 15], ids=["pg18", "pg15"])
def env(request: pytest.FixtureRequest) -> StorageEnv:
    return request.getfixturevalue(f"env{request.param}")  # type: ignore[no-any-return]


def test_branch_of_stopped_parent(env: StorageEnv) -> None:
    env18 = env
    env18.init("main")
    main = env18.start("main")
    with main.connect() as conn:
        _seed(conn)
        main_tli = pg_timeline(conn)
    env18.stop("main")  # a clean shutdown writes the unlogged table to disk, too
    env18.branch("dev", "main", running_parent=False)
    dev = env18.start("dev")
    with dev.connect() as conn:
        assert _count(conn, "SELECT count(*) FROM t") == 1000
        assert _count(conn, "SELECT count(*) FROM scratch") == 0
        assert pg_timeline(conn) != main_tli
        conn.execute("INSERT INTO t VALUES (8000, 'dev')")
    main = env18.start("main")
    with main.connect() as conn:
        assert _count(conn, "SELECT count(*) FROM scratch") == 100
        assert _count(conn, "SELECT count(*) FROM t WHERE id = 8000") == 0


def test_branch_of_a_branch_that_never_started(env18: StorageEnv) -> None:
    env18.init("main")
    main = env18.start("main")
    with main.connect() as conn:
        _seed(conn)
    env18.branch("dev", "main")
    env18.branch("feature", "dev", running_parent=False)
    assert env18.storage.manifest("feature").branch_point == \
        env18.storage.manifest("dev").branch_point
    feature = env18.start("feature")
    with feature.connect() as conn:
        assert _count(conn, "SELECT count(*) FROM t") == 1000
    dev = env18.start("dev")
    with dev.connect() as conn:
        assert _count(conn, "SELECT count(*) FROM t") == 1000


def test_branching_a_stopped_server_as_running_fails_cleanly(env18: StorageEnv) -> None:
    env18.init("main")
    main = env18.start("main")
    env18.stop("main")
    with pytest.raises(Unavailable, match="online backup"):
        env18.storage.branch_timeline("dev", "main", running(main))
    assert not env18.storage.exists("dev")
    assert not (env18.storage.root / "dev").exists()


def test_branching_a_running_server_as_stopped_is_refused(env18: StorageEnv) -> None:
    env18.init("main")
    env18.start("main")
    with pytest.raises(Conflict, match="running"):
        env18.storage.branch_timeline("dev", "main", None)
    assert not env18.storage.exists("dev")
