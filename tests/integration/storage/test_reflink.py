"""Branching with reflinks on a loop-mounted XFS (reflink=1) image."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from argon.pg import OsUser
from argon.storage import ReflinkDriver, detect_clone_driver
from tests.fixtures.storage import pg_timeline
from tests.integration.storage.conftest import StorageEnv, make_env

pytestmark = pytest.mark.reflink


@pytest.fixture
def xfs_env(xfs_reflink_dir: Path, argon_tmp: Path, pg_user: OsUser) -> Iterator[StorageEnv]:
    root = Path(tempfile.mkdtemp(prefix="timelines-", dir=xfs_reflink_dir))
    os.chmod(root, 0o755)
    env = make_env(root, argon_tmp, pg_user, 18)
    try:
        yield env
    finally:
        env.close()
        shutil.rmtree(root, ignore_errors=True)  # the image is small and shared per module


def _used_bytes(path: Path) -> int:
    os.sync()
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def test_driver_is_detected_as_reflink(xfs_reflink_dir: Path) -> None:
    assert detect_clone_driver(xfs_reflink_dir).name == "reflink"
    assert detect_clone_driver(xfs_reflink_dir, prefer="reflink").name == "reflink"
    assert detect_clone_driver(xfs_reflink_dir, prefer="copy").name == "copy"


def test_a_new_branch_adds_almost_no_disk(xfs_env: StorageEnv) -> None:
    assert isinstance(xfs_env.storage.driver, ReflinkDriver)
    xfs_env.init("main")
    main = xfs_env.start("main")
    with main.connect() as conn:
        conn.execute("CREATE TABLE big AS SELECT g, repeat('x', 200) AS pad "
                     "FROM generate_series(1, 100000) g")  # ~30 MB of table data
    xfs_env.stop("main")
    os.sync()  # the parent's shutdown writes must not be counted as the branch's
    before = _used_bytes(xfs_env.storage.root)
    xfs_env.branch("dev", "main", running_parent=False)
    os.sync()
    added = _used_bytes(xfs_env.storage.root) - before
    assert added < 1024 * 1024, f"a reflinked branch used {added} bytes"
    # Each timeline still reports its full allocation (extents are shared, not hidden).
    assert xfs_env.storage.size_bytes("dev") > 30 * 1024 * 1024
    dev = xfs_env.start("dev")
    with dev.connect() as conn:
        assert conn.execute("SELECT count(*) FROM big").fetchone() == (100000,)
        conn.execute("UPDATE big SET pad = 'y' WHERE g <= 10")
    main = xfs_env.start("main")
    with main.connect() as conn:  # copy-on-write: the parent's blocks are untouched
        assert conn.execute("SELECT count(*) FROM big WHERE pad = 'y'").fetchone() == (0,)


def test_running_branch_with_reflinks(xfs_env: StorageEnv) -> None:
    xfs_env.init("main")
    main = xfs_env.start("main")
    with main.connect() as conn:
        conn.execute("CREATE TABLE t AS SELECT generate_series(1, 1000) AS id")
        tli = pg_timeline(conn)
    xfs_env.branch("dev", "main")
    xfs_env.branch("feature", "dev", running_parent=False)  # dev never started yet
    for child in ("dev", "feature"):
        server = xfs_env.start(child)
        with server.connect() as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (1000,)
            assert pg_timeline(conn) != tli
