"""WAL archiving into each timeline's wal/ and branching on the system PostgreSQL 15."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fixtures.storage import pg_timeline
from tests.integration.storage.conftest import StorageEnv


def _wait_for_file(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file():
            return
        time.sleep(0.05)
    raise AssertionError(f"{path.name} never appeared in {path.parent}: "
                         f"{sorted(p.name for p in path.parent.iterdir())}")


def _switch_and_expect_archived(env: StorageEnv, timeline_id: str) -> None:
    with env.servers[timeline_id].connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS a (x int)")
        conn.execute("INSERT INTO a SELECT generate_series(1, 100)")
        row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
    assert row is not None
    _wait_for_file(env.storage.archive_dir(timeline_id) / row[0])


@pytest.fixture(params=[18, 15], ids=["pg18", "pg15"])
def env(request: pytest.FixtureRequest) -> StorageEnv:
    return request.getfixturevalue(f"env{request.param}")  # type: ignore[no-any-return]


def test_switched_wal_lands_in_the_timelines_archive(env: StorageEnv) -> None:
    env.init("main")
    env.start("main")
    _switch_and_expect_archived(env, "main")


def test_branch_archives_into_its_own_archive_only(env: StorageEnv) -> None:
    env.init("main")
    main = env.start("main")
    with main.connect() as conn:
        conn.execute("CREATE TABLE t AS SELECT generate_series(1, 500) AS id")
        parent_tli = pg_timeline(conn)
    env.branch("dev", "main")
    dev = env.start("dev")
    with dev.connect() as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (500,)
        tli = pg_timeline(conn)
    assert tli != parent_tli
    # The promotion's history file and the branch's WAL go to the branch's archive.
    _wait_for_file(env.storage.archive_dir("dev") / f"{tli:08X}.history")
    _switch_and_expect_archived(env, "dev")
    assert not list(env.storage.archive_dir("main").glob(f"{tli:08X}*"))
