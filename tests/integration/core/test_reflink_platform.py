"""The whole platform on an XFS home: the reflink driver is detected and branches share blocks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest

from tests.fixtures.argon_env import ArgonEnv, kill_leftover_postgres, make_env
from tests.fixtures.common import TEST_ROOT
from tests.fixtures.xfs import XfsUnavailable, xfs_mount

pytestmark = pytest.mark.reflink


@pytest.fixture(scope="module")
def xfs_env() -> Iterator[ArgonEnv]:
    try:
        with xfs_mount(TEST_ROOT, size_bytes=1536 * 2**20) as mnt:
            env = make_env("xfs", ["--clone-driver", "reflink"])
            env.home = mnt / env.home.name
            env.start()
            try:
                yield env
            finally:
                env.stop()
                kill_leftover_postgres(env.home)
    except XfsUnavailable as exc:
        pytest.skip(str(exc))


def _used(path) -> int:  # type: ignore[no-untyped-def]
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def test_status_reports_reflink(xfs_env: ArgonEnv) -> None:
    assert xfs_env.cli_json("status")["clone_driver"] == "reflink"


def test_reflink_branch_has_data_and_adds_under_a_megabyte(xfs_env: ArgonEnv) -> None:
    project = xfs_env.default_project()
    pid = project["id"]
    main = next(b for b in xfs_env.api("GET", f"/projects/{pid}/branches").json()["branches"]
                if b["default"])
    uri = xfs_env.api("GET", f"/projects/{pid}/connection_uri", params={
        "branch_id": main["id"], "database_name": "neondb", "role_name": "neondb_owner"}
    ).json()["uri"]
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE TABLE payload AS SELECT g, repeat('y', 500) AS pad "
                     "FROM generate_series(1, 100000) g")
    # measure on a quiet filesystem: every compute stopped, their writes flushed
    for ep in xfs_env.api("GET", f"/projects/{pid}/endpoints").json()["endpoints"]:
        xfs_env.api("POST", f"/projects/{pid}/endpoints/{ep['id']}/suspend")
    os.sync()
    before = _used(xfs_env.home)
    r = xfs_env.api("POST", f"/projects/{pid}/branches", json={"branch": {"name": "cow"}})
    assert r.status_code == 201, r.text
    os.sync()
    added = _used(xfs_env.home) - before
    assert added < 1024 * 1024, f"a reflink branch added {added} bytes"
    ep = xfs_env.api("POST", f"/projects/{pid}/endpoints", json={"endpoint": {
        "branch_id": r.json()["branch"]["id"], "type": "read_write"}})
    assert ep.status_code == 201, ep.text
    child_uri = xfs_env.api("GET", f"/projects/{pid}/connection_uri", params={
        "branch_id": r.json()["branch"]["id"], "database_name": "neondb",
        "role_name": "neondb_owner"}).json()["uri"]
    with psycopg.connect(child_uri) as conn:
        assert conn.execute("SELECT count(*) FROM payload").fetchone() == (100000,)
