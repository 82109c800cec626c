"""The storage pool on an ext4 home: a real Argon (root, loop devices, xfsprogs) keeps its
timelines in an XFS image of its own, so a branch of a 1 GB database shares its blocks;
the pool comes back after a restart, a kill -9 and a "reboot" (loop device gone); with
``--storage-pool off`` branches stay copies.  Every pool made here is unmounted and its
loop device detached at the end, whatever happened."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from argon.storage.drivers import reflink_supported
from argon.storage.pool import IMAGE_NAME, POOL_DIR, loops_backed_by, parse_mountinfo
from argon.storage.pool_mount import StoragePool, loop_backing_files
from tests.fixtures.argon_env import ArgonEnv, kill_leftover_postgres, make_env, wait_operations
from tests.fixtures.common import TEST_ROOT
from tests.fixtures.pool import pool_unavailable, release_pool

pytestmark = pytest.mark.reflink

MiB = 1 << 20
ROWS_1GB = 4_500_000   # ~241 bytes a row on disk: just over 1 GiB of table


def _skip_reason() -> str | None:
    if reason := pool_unavailable():
        return reason
    TEST_ROOT.mkdir(parents=True, exist_ok=True)
    if reflink_supported(TEST_ROOT):
        return f"{TEST_ROOT} has reflinks itself: the pool is for filesystems without (ext4)"
    return None


def _loops(env: ArgonEnv) -> tuple[str, ...]:
    return loops_backed_by(str(env.home.resolve() / POOL_DIR / IMAGE_NAME), loop_backing_files())


def _pool_mounts(env: ArgonEnv) -> list[str]:
    """Sources mounted on the home's timelines (exactly one when the pool is in use)."""
    target = str(env.home.resolve() / "timelines")
    return [m.source for m in parse_mountinfo(Path("/proc/self/mountinfo").read_text())
            if m.mount_point == target]


def _used(path: Path) -> int:
    """Blocks in use on the pool: reflinked extents count once, as the disk holds them."""
    os.sync()
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _cleanup(env: ArgonEnv) -> None:
    env.stop()
    kill_leftover_postgres(env.home)
    release_pool(env.home)
    assert _loops(env) == (), f"loop devices left attached: {_loops(env)}"
    assert not os.path.ismount(env.home / "timelines")


def _started(name: str, *args: str) -> ArgonEnv:
    env = make_env(name, list(args))
    env.start()
    return env


@pytest.fixture(scope="module")
def pool_env() -> Iterator[ArgonEnv]:
    if reason := _skip_reason():
        pytest.skip(reason)
    env = make_env("pool", ["--storage-pool", "auto"])
    try:
        env.start()
        yield env
    finally:
        _cleanup(env)


def _main(env: ArgonEnv) -> tuple[str, str]:
    pid = env.default_project()["id"]
    main = next(b for b in env.api("GET", f"/projects/{pid}/branches").json()["branches"]
                if b["default"])
    return pid, main["id"]


def _uri(env: ArgonEnv, pid: str, branch_id: str) -> str:
    r = env.api("GET", f"/projects/{pid}/connection_uri", params={
        "branch_id": branch_id, "database_name": "neondb", "role_name": "neondb_owner"})
    assert r.status_code == 200, r.text
    return str(r.json()["uri"])


def _suspend_all(env: ArgonEnv, pid: str) -> None:
    for ep in env.api("GET", f"/projects/{pid}/endpoints").json()["endpoints"]:
        r = env.api("POST", f"/projects/{pid}/endpoints/{ep['id']}/suspend")
        assert r.status_code == 200, r.text
        wait_operations(env.api, pid, r.json()["operations"])


def _count(env: ArgonEnv, pid: str, branch_id: str) -> Any:
    with psycopg.connect(_uri(env, pid, branch_id), connect_timeout=60) as conn:
        return conn.execute("SELECT count(*) FROM big").fetchone()


def test_a_fresh_ext4_home_gets_the_pool_and_reports_it(pool_env: ArgonEnv) -> None:
    out = pool_env.output()
    assert "clone driver reflink" in out
    assert f"storage pool XFS image {pool_env.home.resolve() / POOL_DIR / IMAGE_NAME}" in out
    assert len(_pool_mounts(pool_env)) == 1 and _pool_mounts(pool_env)[0] in _loops(pool_env)
    status = pool_env.cli_json("status")
    assert status["clone_driver"] == "reflink"
    assert status["storage_pool"]["kind"] == "pool"
    assert status["storage_pool"]["loop"] == _pool_mounts(pool_env)[0]
    checks = json.loads(pool_env.cli("doctor", "--json", check=False).stdout)
    pool_check = next(c for c in checks if c["name"] == "storage pool")
    assert pool_check["status"] == "ok" and "XFS image" in pool_check["detail"]
    image = pool_env.home / POOL_DIR / IMAGE_NAME
    assert (os.stat(image).st_mode & 0o777, os.stat(image).st_uid) == (0o600, 0)
    assert os.stat(pool_env.home / "timelines").st_mode & 0o711 == 0o711   # argon crosses it


def test_a_branch_of_a_1gb_database_adds_under_1mib_and_is_usable(pool_env: ArgonEnv) -> None:
    pid, main = _main(pool_env)
    with psycopg.connect(_uri(pool_env, pid, main), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("CREATE TABLE big AS SELECT g, repeat('x', 200) AS pad "
                     f"FROM generate_series(1, {ROWS_1GB}) g")
        size = conn.execute("SELECT pg_total_relation_size('big')").fetchone()[0]
        conn.execute("CHECKPOINT")
    assert size >= 1000 * MiB, size
    _suspend_all(pool_env, pid)   # measure on a quiet pool: the parent's writes are done
    pool = pool_env.home / "timelines"
    before = _used(pool)
    r = pool_env.api("POST", f"/projects/{pid}/branches", json={"branch": {"name": "big-copy"}})
    assert r.status_code == 201, r.text
    wait_operations(pool_env.api, pid, r.json()["operations"])
    added = _used(pool) - before
    assert added < MiB, f"a branch of a {size // MiB} MiB database added {added} bytes"
    child = r.json()["branch"]["id"]
    ep = pool_env.api("POST", f"/projects/{pid}/endpoints", json={"endpoint": {
        "branch_id": child, "type": "read_write"}})
    assert ep.status_code == 201, ep.text
    with psycopg.connect(_uri(pool_env, pid, child), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM big").fetchone() == (ROWS_1GB,)
        conn.execute("UPDATE big SET pad = 'changed' WHERE g <= 1000")
    assert _count(pool_env, pid, main) == (ROWS_1GB,)
    with psycopg.connect(_uri(pool_env, pid, main)) as conn:   # copy on write
        assert conn.execute("SELECT count(*) FROM big WHERE pad = 'changed'").fetchone() == (0,)


def test_restart_kill9_and_reboot_remount_the_pool_with_the_data(pool_env: ArgonEnv) -> None:
    pid, main = _main(pool_env)
    with psycopg.connect(_uri(pool_env, pid, main), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('before restarts')")
    # a clean stop unmounts (its computes are stopped) and detaches the loop device
    pool_env.stop()
    assert "storage pool unmounted)." in pool_env.output()
    assert _pool_mounts(pool_env) == [] and _loops(pool_env) == ()
    assert list((pool_env.home / "timelines").iterdir()) == []   # the empty mount point
    pool_env.start()
    assert len(_pool_mounts(pool_env)) == 1
    _assert_kept(pool_env, pid, main)
    # kill -9: the mount (and the detached computes) outlive Argon; the next start adopts
    # the mount instead of mounting the image a second time
    loop = _pool_mounts(pool_env)[0]
    pool_env.kill9()
    assert _pool_mounts(pool_env) == [loop]
    pool_env.start()
    assert _pool_mounts(pool_env) == [loop] and _loops(pool_env) == (loop,)
    _assert_kept(pool_env, pid, main)
    # a "reboot": Argon and its computes die, the mount and the loop device are gone
    pool_env.kill9()
    kill_leftover_postgres(pool_env.home)
    release_pool(pool_env.home)
    assert _loops(pool_env) == ()
    pool_env.start()
    assert len(_pool_mounts(pool_env)) == 1
    _assert_kept(pool_env, pid, main)
    assert pool_env.cli_json("status")["clone_driver"] == "reflink"


def _assert_kept(env: ArgonEnv, pid: str, main: str) -> None:
    with psycopg.connect(_uri(env, pid, main), connect_timeout=60) as conn:
        assert conn.execute("SELECT v FROM kept").fetchall() == [("before restarts",)]


def test_opt_out_gives_copies() -> None:
    if reason := _skip_reason():
        pytest.skip(reason)
    env = _started("pool-off", "--storage-pool", "off")
    try:
        assert "storage pool off" in env.output()
        assert "clone driver copy" in env.output()
        assert _pool_mounts(env) == [] and not (env.home / POOL_DIR).exists()
        assert env.cli_json("status")["clone_driver"] == "copy"
        pid, main = _main(env)
        with psycopg.connect(_uri(env, pid, main), autocommit=True) as conn:
            conn.execute("CREATE TABLE big AS SELECT g, repeat('x', 200) AS pad "
                         "FROM generate_series(1, 100000) g")   # ~23 MiB
        _suspend_all(env, pid)
        before = _used(env.home)
        r = env.api("POST", f"/projects/{pid}/branches", json={"branch": {"name": "copied"}})
        assert r.status_code == 201, r.text
        wait_operations(env.api, pid, r.json()["operations"])
        assert _used(env.home) - before > 20 * MiB   # a full copy
    finally:
        _cleanup(env)


def test_a_home_whose_timelines_live_on_ext4_keeps_them_there() -> None:
    if reason := _skip_reason():
        pytest.skip(reason)
    env = _started("pool-legacy", "--storage-pool", "off")   # an older home, say
    try:
        pid, main = _main(env)
        with psycopg.connect(_uri(env, pid, main), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('before restarts')")
        env.stop()
        env.extra_args = ["--storage-pool", "auto"]
        env.start()
        assert "predate the storage pool" in env.output()
        assert "the pool applies to new homes" in env.output()
        assert _pool_mounts(env) == [] and not (env.home / POOL_DIR).exists()
        _assert_kept(env, pid, main)
        # insisting on the pool is refused with the reason, nothing is moved
        env.stop()
        env.extra_args = ["--storage-pool", "xfs-image"]
        with pytest.raises(RuntimeError, match="does not move them"):
            env.start(timeout=60)
        assert _pool_mounts(env) == [] and not (env.home / POOL_DIR / IMAGE_NAME).exists()
    finally:
        _cleanup(env)


def test_an_image_that_is_not_xfs_is_never_formatted() -> None:
    if reason := _skip_reason():
        pytest.skip(reason)
    env = make_env("pool-foreign", ["--storage-pool", "auto"])
    image = env.home / POOL_DIR / IMAGE_NAME
    image.parent.mkdir(parents=True)
    image.write_bytes(b"precious data, not a filesystem\n")
    try:
        with pytest.raises(RuntimeError, match="formats only images it creates"):
            env.start(timeout=60)
        assert image.read_bytes() == b"precious data, not a filesystem\n"
        assert _pool_mounts(env) == []
        assert subprocess.run(["losetup", "-j", str(image.resolve())], capture_output=True,
                              text=True).stdout == ""
    finally:
        _cleanup(env)


def test_a_pool_running_low_grows_online_and_keeps_its_files() -> None:
    """The executor alone, on a 1 GiB image: under the threshold at once, so the start
    grows it (truncate, losetup -c, xfs_growfs) to what the disk has free."""
    if reason := _skip_reason():
        pytest.skip(reason)
    env = make_env("pool-grow")
    env.home.mkdir(parents=True)
    pool = StoragePool(env.home)
    try:
        pool.ensure("auto", size=1 << 30)
        (env.home / "timelines" / "kept").write_text("kept across growth\n")
        status = pool.status()
        assert status.size_bytes > 2 << 30, status
        st = os.statvfs(env.home / "timelines")
        assert st.f_blocks * st.f_frsize > 2 << 30   # XFS itself grew, not just the file
        assert pool.release()
        assert StoragePool(env.home).ensure("auto").kind.value == "pool"
        assert (env.home / "timelines" / "kept").read_text() == "kept across growth\n"
    finally:
        release_pool(env.home)
        assert _loops(env) == ()
