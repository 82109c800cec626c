"""A full storage filesystem: refuse clearly, keep serving reads, leave nothing half-made.

The filesystems are small (a tmpfs for the copy driver, an XFS image for reflinks) and
filled by a file written as root, so they are full for every account (ext4 would keep
5% for root).  Storage alone first (ENOSPC as a timeline begins and mid-clone), then
the whole platform on a tmpfs home (the API, a running compute, the metadata database
on the same full filesystem), then the disk filling up after the early check.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from argon.control.requests import BranchCreate, ProjectCreate
from argon.control.services import Services, build_services
from argon.errors import InsufficientStorage, is_disk_full
from argon.pg import OsUser
from argon.settings import Settings
from argon.storage import Storage, TimelineState
from argon.storage.space import MARGIN_BYTES
from tests.fixtures.argon_env import ArgonEnv, kill_leftover_postgres, make_env
from tests.fixtures.common import TEST_ROOT
from tests.fixtures.storage import running
from tests.fixtures.tmpfs import TmpfsUnavailable, fill, free_bytes, tmpfs_mount, unfill
from tests.fixtures.xfs import XfsUnavailable, xfs_mount
from tests.integration.core.helpers import connect
from tests.integration.storage.conftest import StorageEnv, make_env as make_storage_env

MiB = 1 << 20
_FREE = re.compile(r"has [0-9.]+ [KM]iB free and this needs [0-9.]+ MiB")


@pytest.fixture
def small_root(pg_user: OsUser) -> Iterator[Path]:
    try:
        with tmpfs_mount(TEST_ROOT, 256 * MiB) as mnt:
            yield mnt
    except TmpfsUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def small_env(small_root: Path, pg_user: OsUser) -> Iterator[StorageEnv]:
    env = make_storage_env(small_root / "timelines", small_root, pg_user, 18)
    try:
        yield env
    finally:
        env.close()


def _timeline_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def _seed(env: StorageEnv) -> None:
    env.init("main")
    server = env.start("main")
    with server.connect() as conn:
        # ~20 MiB of table: a copy-driver clone cannot fit in the few MiB left below.
        conn.execute("CREATE TABLE t AS SELECT g, repeat('x', 200) AS pad "
                     "FROM generate_series(1, 80000) g")
        conn.execute("CHECKPOINT")


@pytest.mark.parametrize("leave_mib", [0, 4], ids=["full", "almost-full"])
def test_storage_refuses_early_and_undoes_a_clone_that_ran_out_of_space(
        small_env: StorageEnv, small_root: Path, leave_mib: int) -> None:
    _seed(small_env)
    # Stopped: a parent running on a nearly full disk may itself PANIC at the backup
    # start's checkpoint, which is why control checks the space before touching it.
    small_env.stop("main")
    storage = small_env.storage
    fill(small_root, leave_bytes=leave_mib * MiB)

    with pytest.raises(InsufficientStorage) as refused:
        storage.require_space_for_branch("main", "create branch dev")
    text = refused.value.message
    assert "create branch dev" in text and _FREE.search(text) and "needs" in text
    assert refused.value.status == 507 and refused.value.code == "INSUFFICIENT_STORAGE"

    # Past the early check (as if the disk filled meanwhile): ENOSPC when the timeline
    # begins (full) or mid-clone (almost full).
    with pytest.raises(InsufficientStorage) as mid_way:
        storage.branch_timeline("dev", "main", None)
    assert "ran out of space" in mid_way.value.message
    assert _timeline_dirs(storage.root) == ["main"]     # no half-made timeline, no trash

    unfill(small_root)
    storage.require_space_for_branch("main", "create branch dev")
    storage.branch_timeline("dev", "main", None)
    assert storage.manifest("dev").state is TimelineState.READY
    dev = small_env.start("dev")
    with dev.connect() as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (80000,)


def test_no_snapshot_is_started_on_a_nearly_full_disk(small_env: StorageEnv,
                                                     small_root: Path) -> None:
    _seed(small_env)
    fill(small_root, leave_bytes=4 * MiB)
    with pytest.raises(InsufficientStorage):
        small_env.storage.snapshot_running("main", running(small_env.servers["main"]))
    # No backup was started, so no checkpoint: the parent still runs and serves reads.
    with small_env.servers["main"].connect() as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (80000,)
    assert not list((small_env.storage.root / "main" / "snapshots").glob(".tmp-*"))


@pytest.fixture
def small_xfs() -> Iterator[Path]:
    try:
        with xfs_mount(TEST_ROOT, 320 * MiB) as mnt:   # about the smallest XFS allowed
            yield mnt
    except XfsUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.reflink
def test_reflink_storage_refuses_and_undoes_on_a_full_xfs(small_xfs: Path,
                                                          pg_user: OsUser) -> None:
    env = make_storage_env(small_xfs / "timelines", small_xfs, pg_user, 18)
    try:
        assert env.storage.driver.name == "reflink"
        _seed(env)
        env.stop("main")
        fill(small_xfs)
        with pytest.raises(InsufficientStorage) as refused:
            env.storage.require_space_for_branch("main", "create branch dev")
        assert "reflinks share the parent's data" in refused.value.message
        with pytest.raises(InsufficientStorage):
            env.storage.branch_timeline("dev", "main", None)
        assert _timeline_dirs(env.storage.root) == ["main"]
        unfill(small_xfs)
        env.storage.require_space_for_branch("main", "create branch dev")
        env.storage.branch_timeline("dev", "main", None)
        assert env.storage.manifest("dev").state is TimelineState.READY
    finally:
        env.close()


# -- the whole platform on a full home ---------------------------------------------------

@dataclass
class _TmpfsArgon(ArgonEnv):
    """Argon whose home is on the tmpfs, its stdout log off it (kept readable)."""

    log_dir: Path = TEST_ROOT

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.home.name}.stdout"


@pytest.fixture
def full_home() -> Iterator[tuple[_TmpfsArgon, Path]]:
    try:
        with tmpfs_mount(TEST_ROOT, 640 * MiB) as mnt:
            base = make_env("diskfull")
            env = _TmpfsArgon(home=mnt / base.home.name, api_port=base.api_port,
                              pg_port=base.pg_port, http_port=base.http_port)
            env.start()
            try:
                yield env, mnt
            finally:
                env.stop()
                kill_leftover_postgres(env.home)
    except TmpfsUnavailable as exc:
        pytest.skip(str(exc))


def _timelines_in_metadata(home: Path) -> set[str]:
    # Read-only: the check must not need space either.
    with closing(sqlite3.connect(f"file:{home / 'argon.db'}?mode=ro", uri=True)) as db:
        return {r[0] for r in db.execute("SELECT timeline_id FROM branches")}


def _timelines_on_disk(home: Path) -> set[str]:
    return {p.name for p in (home / "timelines").iterdir()
            if p.is_dir() and not p.name.startswith(".")}


def _assert_refused(r: Any, doing: str) -> None:
    assert r.status_code == 507, r.text
    body = r.json()
    assert body["code"] == "INSUFFICIENT_STORAGE"
    assert doing in body["message"] and _FREE.search(body["message"]), body["message"]
    assert "retry" in body["message"]


def _iso_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def test_full_home_refuses_branching_keeps_reads_and_recovers(
        full_home: tuple[_TmpfsArgon, Path]) -> None:
    env, mnt = full_home
    pid = env.default_project()["id"]
    branches = env.api("GET", f"/projects/{pid}/branches").json()["branches"]
    main = next(b for b in branches if b["default"])["id"]
    with connect(env, pid, main) as conn:
        conn.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
    r = env.api("POST", f"/projects/{pid}/branches", json={"branch": {"name": "dev"}})
    assert r.status_code == 201, r.text
    dev = r.json()["branch"]["id"]
    reader = connect(env, pid, main)       # a session open before the disk fills
    made_before = _timelines_in_metadata(env.home)
    assert made_before == _timelines_on_disk(env.home)

    fill(mnt)
    assert free_bytes(mnt) < MARGIN_BYTES

    _assert_refused(env.api("POST", f"/projects/{pid}/branches",
                            json={"branch": {"name": "feature"}}), "create branch feature")
    _assert_refused(env.api("POST", f"/projects/{pid}/branches", json={
        "branch": {"name": "past", "parent_timestamp": _iso_now()}}), "create branch past")
    _assert_refused(env.api("POST", f"/projects/{pid}/branches/{dev}/restore",
                            json={"source_branch_id": main}), "restore branch dev")
    _assert_refused(env.api("POST", "/projects", json={"project": {"name": "more"}}),
                    "create project more")

    # The running compute keeps serving reads, on the open session and on a new one.
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (1000,)
    with connect(env, pid, main) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1000,)
    # Nothing half-made: the same branches in the API, the metadata and on disk, and no
    # operation left running.
    listed = env.api("GET", f"/projects/{pid}/branches")
    assert listed.status_code == 200, listed.text
    assert {b["name"] for b in listed.json()["branches"]} == {"main", "dev"}
    assert all(b["current_state"] == "ready" for b in listed.json()["branches"])
    assert _timelines_in_metadata(env.home) == made_before == _timelines_on_disk(env.home)
    ops = env.api("GET", f"/projects/{pid}/operations").json()["operations"]
    assert not [o for o in ops if o["status"] in ("running", "scheduling")], ops
    # A write that needs a new WAL segment makes Postgres PANIC (as it must: it cannot
    # log the change); the compute goes down until space returns.
    with pytest.raises(psycopg.Error):
        for _ in range(64):
            reader.execute("SELECT pg_logical_emit_message(true, 'argon', repeat('x', 1 << 20))")
    reader.close()

    unfill(mnt)
    r = env.api("POST", f"/projects/{pid}/branches", json={
        "branch": {"name": "feature"}, "endpoints": [{"type": "read_write"}]})
    assert r.status_code == 201, r.text
    feature = r.json()["branch"]["id"]
    with connect(env, pid, feature) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1000,)
    with connect(env, pid, main) as conn:   # the next connection starts it again
        conn.execute("INSERT INTO t VALUES (1001)")
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1001,)
    r = env.api("POST", f"/projects/{pid}/branches", json={
        "branch": {"name": "past", "parent_timestamp": _iso_now()}})
    assert r.status_code == 201, r.text
    names = {b["name"] for b in env.api("GET", f"/projects/{pid}/branches").json()["branches"]}
    assert names == {"main", "dev", "feature", "past"}
    assert _timelines_in_metadata(env.home) == _timelines_on_disk(env.home)
    assert (env.home / "run" / "space-reserve").is_file()   # held back again


# -- the disk filling up after the early check (in process, to time the fill) ----------

@pytest.fixture
def tmpfs_services(small_root: Path) -> Iterator[Services]:
    svc = build_services(Settings(home=small_root / "home"))
    try:
        yield svc
    finally:
        unfill(small_root)
        svc.stop_all_computes()
        svc.ctx.engine.dispose()   # the metadata database is on the tmpfs too


@pytest.mark.parametrize("leave_mib", [0, 4], ids=["full", "almost-full"])
def test_disk_filling_after_the_check_leaves_nothing_half_made(
        tmpfs_services: Services, small_root: Path, monkeypatch: pytest.MonkeyPatch,
        leave_mib: int) -> None:
    svc = tmpfs_services
    created = svc.projects.create(ProjectCreate(name="late"))
    pid = created.project.id
    with svc.runtime.connect(created.endpoints[0].id, dbname="neondb") as conn:
        conn.execute("CREATE TABLE t AS SELECT g, repeat('x', 200) AS pad "
                     "FROM generate_series(1, 50000) g")
    home = small_root / "home"
    before = _timelines_in_metadata(home)
    # The early check passes (the disk was not full yet), then the disk fills up.
    monkeypatch.setattr(Storage, "require_space_for_branch", lambda *a: None)
    fill(small_root, leave_bytes=leave_mib * MiB)

    with pytest.raises(Exception) as failed:
        svc.branches.create(pid, BranchCreate(name="late"))
    assert is_disk_full(failed.value), repr(failed.value)   # the API answers 507 for it
    assert _timelines_in_metadata(home) == before == _timelines_on_disk(home)
    names = {b.name for b in svc.branches.list(pid).items}
    assert names == {"main"}
    ops = svc.operations.list(pid, limit=100).items
    assert not [o for o in ops if o.status.value in ("running", "scheduling")], ops

    unfill(small_root)
    monkeypatch.undo()
    late = svc.branches.create(pid, BranchCreate(name="late"))
    assert late.branch.name == "late"
    assert _timelines_in_metadata(home) == _timelines_on_disk(home)
    assert (home / "run" / "space-reserve").is_file()   # held back again
