"""Snapshots in the bucket and ``argon recover``: a lost home comes back from the bucket.

Against moto's S3 server (tests/fixtures/object_store.py), a stand-in for AWS S3, MinIO
or R2.  The storage-level tests check what goes up (only changed chunks after the first
snapshot) and what the bucket GC removes (a deleted timeline's objects, not a live
one's); the platform test deletes a whole home and recovers it into a new one.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from argon.compute.sockets import socket_dir_for
from argon.control.admin_password import AdminPasswords
from argon.storage.objectstore.snapshot_plan import (
    BLOBS_PREFIX,
    snapshot_key,
    timeline_manifest_key,
    timeline_prefix,
)
from argon.storage.objectstore.snapshot_sync import SnapshotSync
from tests.fixtures.argon_env import ArgonEnv, kill_leftover_postgres, make_env
from tests.fixtures.common import TEST_ROOT
from tests.fixtures.object_store import ObjectStore
from tests.fixtures.storage import running
from tests.integration.core.helpers import connect, create_branch, new_project
from tests.integration.storage.conftest import StorageEnv

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="computes run as the argon "
                                "account, which needs root to switch to")


def _keys(store: ObjectStore, prefix: str = "") -> set[str]:
    return {o.key for o in store.bucket().list(prefix)}


# -- storage level: incremental upload and GC ------------------------------------------------

def test_second_snapshot_uploads_only_changed_chunks(env18: StorageEnv,
                                                     object_store: ObjectStore) -> None:
    env = env18
    env.init("main")
    main = env.start("main")
    with main.connect() as conn:
        conn.autocommit = True
        # ~40 MB in one relation: three chunks of 16 MiB
        conn.execute("CREATE TABLE big AS SELECT g, repeat('x', 400) AS pad "
                     "FROM generate_series(1, 90000) g")
        conn.execute("CHECKPOINT")
        env.storage.snapshot_running("main", running(main))
        sync = SnapshotSync(object_store.bucket(), env.storage, None)
        first = sync.sync_once()
        assert first.snapshots_uploaded == 2          # initdb's and this one
        blobs_after_first = _keys(object_store, BLOBS_PREFIX)
        uploaded_first = first.chunks_uploaded
        conn.execute("UPDATE big SET pad = 'changed' WHERE g = 1")   # one page
        conn.execute("CHECKPOINT")
        snap2 = env.storage.snapshot_running("main", running(main))
    second = sync.sync_once()
    assert second.snapshots_uploaded == 3
    new_blobs = _keys(object_store, BLOBS_PREFIX) - blobs_after_first
    new_chunks = second.chunks_uploaded - uploaded_first
    assert len(new_blobs) == new_chunks
    record = json.loads(object_store.bucket().get_bytes(snapshot_key("main", snap2.dirname)))
    total_chunks = sum(len(e.get("chunks", ())) for e in record["entries"])
    # the relation's untouched chunks and most catalog files are reused
    assert new_chunks < total_chunks / 3, (new_chunks, total_chunks)
    assert second.chunks_reused > total_chunks / 2


def test_bucket_gc_removes_a_deleted_timeline_and_keeps_the_rest(
        env18: StorageEnv, object_store: ObjectStore) -> None:
    env = env18
    env.init("main")
    main = env.start("main")
    with main.connect() as conn:
        conn.autocommit = True
        conn.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
    env.branch("child", "main")
    child = env.start("child")
    with child.connect() as conn:
        conn.autocommit = True
        conn.execute("CREATE TABLE only_child AS SELECT g, md5(g::text) FROM "
                     "generate_series(1, 20000) g")
        conn.execute("CHECKPOINT")
        env.storage.snapshot_running("child", running(child))
    sync = SnapshotSync(object_store.bucket(), env.storage, None)
    sync.sync_once()
    child_keys = _keys(object_store, timeline_prefix("child"))
    assert timeline_manifest_key("child") in child_keys
    assert any("/snap/" in k for k in child_keys)
    main_records = _keys(object_store, timeline_prefix("main"))
    blobs_before = _keys(object_store, BLOBS_PREFIX)
    # nothing to drop while both live
    assert sync.gc(["main", "child"], {}, set()) == 0
    env.stop("child")
    env.storage.delete_timeline("child")
    deleted = sync.gc(["main"], {}, set())
    assert deleted > 0
    assert _keys(object_store, timeline_prefix("child")) == set()
    assert _keys(object_store, timeline_prefix("main")) == main_records
    blobs_after = _keys(object_store, BLOBS_PREFIX)
    assert blobs_after < blobs_before     # the child's own chunks went, main's stayed
    for key in main_records:
        if "/snap/" in key:
            rec = json.loads(object_store.bucket().get_bytes(key))
            needed = {c for e in rec["entries"] for c in e.get("chunks", ())}
            assert {k.rsplit("/", 1)[1].removesuffix(".zst") for k in blobs_after} >= needed


# -- the platform: delete the home, recover it ---------------------------------------------

def _admin(env: ArgonEnv, endpoint_id: str, project_id: str) -> psycopg.Connection:
    """cloud_admin on the compute's private socket (pg_switch_wal needs a superuser)."""
    sockets = socket_dir_for(env.home, endpoint_id)
    lock = next(sockets.glob(".s.PGSQL.*.lock"))
    password = AdminPasswords(env.home / "secrets").for_project(project_id)
    return psycopg.connect(host=str(sockets), port=lock.name.split(".")[3], user="cloud_admin",
                           password=password, dbname="postgres", autocommit=True)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _branch(env: ArgonEnv, pid: str, name: str, parent: str, **point: Any) -> dict[str, Any]:
    r = env.api("POST", f"/projects/{pid}/branches", json={
        "branch": {"name": name, "parent_id": parent, **point},
        "endpoints": [{"type": "read_write"}]})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _rows(env: ArgonEnv, pid: str, bid: str, sql: str) -> list[tuple[Any, ...]]:
    with connect(env, pid, bid) as conn:
        return conn.execute(sql).fetchall()


def _timelines(meta: Path) -> dict[str, str]:
    """branch id -> timeline id, read from the metadata file outside the home."""
    with sqlite3.connect(meta) as db:
        return dict(db.execute("SELECT id, timeline_id FROM branches").fetchall())


def _seal(env: ArgonEnv, pid: str, endpoint_id: str) -> str:
    """Finish the branch's current WAL segment; returns its name (archived next)."""
    with _admin(env, endpoint_id, pid) as su:
        row = su.execute("SELECT pg_walfile_name(pg_current_wal_insert_lsn())").fetchone()
        su.execute("SELECT pg_switch_wal()")
    assert row is not None
    return str(row[0])


def _wait_for_bucket(env: ArgonEnv, store: ObjectStore, meta: Path,
                     sealed: dict[str, str], timeout: float = 120) -> None:
    """Until the bucket holds every timeline's manifest (as on disk), every local
    snapshot's record, the home's keys and each sealed WAL segment."""
    deadline = time.monotonic() + timeout
    missing: list[str] = []
    while time.monotonic() < deadline:
        keys = _keys(store)
        bucket = store.bucket()
        missing = []
        for bid, tl in _timelines(meta).items():
            tdir = env.home / "timelines" / tl
            key = timeline_manifest_key(tl)
            if key not in keys or bucket.get_bytes(key) != (tdir / "manifest.json").read_bytes():
                missing.append(key)
            snaps = tdir / "snapshots"
            for snap in snaps.iterdir() if snaps.is_dir() else ():
                if not snap.name.startswith(".") and snapshot_key(tl, snap.name) not in keys:
                    missing.append(snapshot_key(tl, snap.name))
            if bid in sealed and f"timelines/{tl}/wal/{sealed[bid]}" not in keys:
                missing.append(f"timelines/{tl}/wal/{sealed[bid]}")
        if "home/secrets/admin.key" not in keys:
            missing.append("home/secrets/admin.key")
        if not missing:
            return
        time.sleep(0.3)
    raise AssertionError(f"the bucket still lacks {missing}")


def _recover(home: Path, store: ObjectStore, meta_url: str) -> dict[str, Any]:
    res = subprocess.run([sys.executable, "-m", "argon.cli.main", "recover", "--home", str(home),
                          "--object-store", store.url, "--metadata-url", meta_url, "--json"],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, **store.env})
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def test_delete_the_home_and_recover_every_branch(object_store: ObjectStore,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in object_store.env.items():
        monkeypatch.setenv(k, v)
    meta_dir = TEST_ROOT / f"meta-{uuid.uuid4().hex[:8]}"
    meta_dir.mkdir(parents=True)
    meta = meta_dir / "argon.db"
    meta_url = f"sqlite:///{meta}"
    args = ["--object-store", object_store.url, "--metadata-url", meta_url]
    env = make_env("objrec", args)
    new = make_env("objrec-new", args)
    try:
        env.start()
        alpha = new_project(env, "alpha", history_retention_seconds=3600)
        pid, main = alpha["project"]["id"], alpha["branch"]["id"]
        eps = {main: alpha["endpoints"][0]["id"]}
        with connect(env, pid, main) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
            conn.execute("INSERT INTO t SELECT g, 'early' FROM generate_series(1, 100) g")
            past = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
            time.sleep(0.2)
            conn.execute("INSERT INTO t SELECT g, 'late' FROM generate_series(101, 150) g")
        base = f"/projects/{pid}/branches/{main}"
        r = env.api("POST", f"{base}/roles", json={"role": {"name": "app_user"}})
        assert r.status_code == 201, r.text
        app_password = r.json()["role"]["password"]
        r = env.api("POST", f"{base}/databases",
                    json={"database": {"name": "appdb", "owner_name": "app_user"}})
        assert r.status_code == 201, r.text
        dev = create_branch(env, pid, "dev", main)
        eps[dev["branch"]["id"]] = dev["endpoints"][0]["id"]
        with connect(env, pid, dev["branch"]["id"]) as conn:
            conn.execute("INSERT INTO t VALUES (1000, 'dev only')")
        at_past = _branch(env, pid, "at-past", main, parent_timestamp=_iso(past))
        eps[at_past["branch"]["id"]] = at_past["endpoints"][0]["id"]
        assert _rows(env, pid, at_past["branch"]["id"], "SELECT count(*) FROM t") == [(100,)]
        beta = new_project(env, "beta")
        bpid, bmain = beta["project"]["id"], beta["branch"]["id"]
        eps[bmain] = beta["endpoints"][0]["id"]
        with connect(env, bpid, bmain) as conn:
            conn.execute("CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 500) g")
        # the last commits of every branch, then every segment sealed and archived
        with connect(env, pid, main) as conn:
            conn.execute("INSERT INTO t VALUES (151, 'last')")
        projects = {main: pid, dev["branch"]["id"]: pid, at_past["branch"]["id"]: pid,
                    bmain: bpid}
        sealed = {bid: _seal(env, projects[bid], ep) for bid, ep in eps.items()}
        _wait_for_bucket(env, object_store, meta, sealed)
        metrics = httpx.get(f"http://127.0.0.1:{env.api_port}/metrics", timeout=30).text
        assert "argon_object_store_snapshot_backlog 0.0" in metrics, metrics[-2000:]
        upload = env.cli_json("status")["snapshot_upload"]
        assert upload["backlog"] == 0 and upload["last_error"] is None, upload

        # the disaster: Argon and its computes die, the home is gone
        env.kill9()
        kill_leftover_postgres(env.home)
        shutil.rmtree(env.home)

        summary = _recover(new.home, object_store, meta_url)
        assert summary["recovered"] is True
        assert summary["missing"] == []
        # every branch's timeline (alpha's three, beta's and the default project's)
        assert {t["timeline_id"] for t in summary["timelines"]} == set(_timelines(meta).values())
        assert "admin.key" in summary["secrets"]
        new.start()

        assert _rows(new, pid, main, "SELECT count(*), max(id) FROM t") == [(151, 151)]
        assert _rows(new, pid, dev["branch"]["id"], "SELECT count(*), max(id) FROM t") == \
            [(151, 1000)]
        assert _rows(new, pid, at_past["branch"]["id"], "SELECT count(*) FROM t") == [(100,)]
        assert _rows(new, bpid, bmain, "SELECT count(*) FROM items") == [(500,)]
        names = {b["name"] for b in new.api("GET", f"/projects/{pid}/branches").json()["branches"]}
        assert names == {"main", "dev", "at-past"}
        roles = new.api("GET", f"{base}/roles").json()["roles"]
        assert "app_user" in {x["name"] for x in roles}
        revealed = new.api("GET", f"{base}/roles/app_user/reveal_password").json()["password"]
        assert revealed == app_password
        dbs = new.api("GET", f"{base}/databases").json()["databases"]
        assert "appdb" in {d["name"] for d in dbs}
        # the role logs in to its database on the recovered compute
        uri = new.api("GET", f"/projects/{pid}/connection_uri", params={
            "branch_id": main, "database_name": "appdb", "role_name": "app_user"}).json()["uri"]
        with psycopg.connect(uri, autocommit=True, connect_timeout=60) as conn:
            assert conn.execute("SELECT current_user, current_database()").fetchone() == \
                ("app_user", "appdb")
        # a past point from before the disaster is still reachable
        again = _branch(new, pid, "past-again", main, parent_timestamp=_iso(past))
        assert _rows(new, pid, again["branch"]["id"], "SELECT count(*) FROM t") == [(100,)]
        # and the recovered branches keep working: new commits
        with connect(new, pid, main) as conn:
            conn.execute("INSERT INTO t VALUES (152, 'after recovery')")
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (152,)
        # deleting a branch takes its objects out of the bucket (the history GC's next run)
        gone_tl = _timelines(meta)[again["branch"]["id"]]
        deadline = time.monotonic() + 60
        while timeline_manifest_key(gone_tl) not in _keys(object_store, timeline_prefix(gone_tl)):
            assert time.monotonic() < deadline, "the new branch never reached the bucket"
            time.sleep(0.3)
        r = new.api("DELETE", f"/projects/{pid}/branches/{again['branch']['id']}")
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 180
        while _keys(object_store, timeline_prefix(gone_tl)) or \
                _keys(object_store, f"timelines/{gone_tl}/"):
            assert time.monotonic() < deadline, _keys(object_store, f"timelines/{gone_tl}/")
            time.sleep(1)
        main_tl = _timelines(meta)[main]     # the live ones keep theirs
        assert timeline_manifest_key(main_tl) in _keys(object_store, timeline_prefix(main_tl))
    finally:
        for e in (env, new):
            e.stop()
            kill_leftover_postgres(e.home)
        shutil.rmtree(meta_dir, ignore_errors=True)


def test_recover_refuses_a_home_that_is_not_empty(object_store: ObjectStore,
                                                  tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "timelines").mkdir(parents=True)
    res = subprocess.run([sys.executable, "-m", "argon.cli.main", "recover", "--home", str(home),
                          "--object-store", object_store.url, "--metadata-url",
                          f"sqlite:///{tmp_path / 'meta.db'}", "--json"],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, **object_store.env})
    assert res.returncode == 1
    out = json.loads(res.stdout)
    assert out["recovered"] is False and "is not empty" in out["error"]
    assert sorted(p.name for p in home.iterdir()) == ["timelines"]


def _metadata_copied_after(env: ArgonEnv, when: float, timeout: float = 60) -> None:
    """Until /metrics says the home's SQLite metadata was copied to the bucket after
    ``when`` (time.time())."""
    deadline = time.monotonic() + timeout
    value = 0.0
    while time.monotonic() < deadline:
        text = httpx.get(f"http://127.0.0.1:{env.api_port}/metrics", timeout=30).text
        for line in text.splitlines():
            if line.startswith("argon_object_store_metadata_copy_timestamp_seconds "):
                value = float(line.split()[1])
        if value > when:
            return
        time.sleep(0.3)
    raise AssertionError(f"metadata last copied at {value}, not after {when}")


def test_recover_without_metadata_url_uses_the_buckets_copy(
        object_store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Metadata in the home's SQLite (the default) dies with the home; the copy the
    uploader keeps in the bucket brings projects, branches and roles back."""
    for k, v in object_store.env.items():
        monkeypatch.setenv(k, v)
    args = ["--object-store", object_store.url]
    env = make_env("objrec-sqlite", args)
    new = make_env("objrec-sqlite-new", args)
    try:
        env.start()
        created = new_project(env, "gamma")
        pid, main = created["project"]["id"], created["branch"]["id"]
        eps = {main: created["endpoints"][0]["id"]}
        with connect(env, pid, main) as conn:
            conn.execute("CREATE TABLE g AS SELECT x FROM generate_series(1, 42) x")
        side = create_branch(env, pid, "side", main)
        eps[side["branch"]["id"]] = side["endpoints"][0]["id"]
        with connect(env, pid, side["branch"]["id"]) as conn:
            conn.execute("INSERT INTO g VALUES (-1)")
        sealed = {bid: _seal(env, pid, ep) for bid, ep in eps.items()}
        changed = time.time()
        meta = env.home / "argon.db"
        _wait_for_bucket(env, object_store, meta, sealed)
        _metadata_copied_after(env, changed)
        env.kill9()
        kill_leftover_postgres(env.home)
        shutil.rmtree(env.home)

        res = subprocess.run([sys.executable, "-m", "argon.cli.main", "recover", "--home",
                              str(new.home), "--object-store", object_store.url, "--json"],
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stdout + res.stderr
        summary = json.loads(res.stdout)
        assert summary["missing"] == [] and "bucket's copy" in summary["metadata_url"]
        new.start()
        assert _rows(new, pid, main, "SELECT count(*) FROM g") == [(42,)]
        assert _rows(new, pid, side["branch"]["id"], "SELECT count(*), min(x) FROM g") == \
            [(43, -1)]
    finally:
        for e in (env, new):
            e.stop()
            kill_leftover_postgres(e.home)
