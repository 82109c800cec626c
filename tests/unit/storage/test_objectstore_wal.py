"""WAL to a bucket: the commands Postgres is given, and push/fetch against moto's S3.

``push`` and ``fetch`` run here in-process (the same functions the kit's script calls);
the commands are also run for real by /bin/sh, as Postgres would, from a kit laid out by
``build_kit`` with this interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from argon.pg import Lsn, OsUser
from argon.storage import RecoveryTarget, StorageConf, TargetKind, render_storage_conf
from argon.storage.objectstore import ObjectStoreError
from argon.storage.objectstore.archive_status import ArchiveWatch, read_state
from argon.storage.objectstore.kit import build_kit
from argon.storage.objectstore.wal_archive import fetch, push, read_credentials
from argon.storage.objectstore.wal_commands import (
    BucketWal,
    bucket_archive_command,
    bucket_restore_command,
    wal_key,
)
from tests.fixtures.object_store import ObjectStore

SEG = "000000010000000000000003"


def _me() -> OsUser:
    return OsUser("me", os.getuid(), os.getgid())


def _bw(tmp: Path, url: str = "s3://b/p") -> BucketWal:
    return BucketWal(url=url, python=Path(sys.executable), kit=tmp / "kit",
                     credentials=tmp / "creds", status_dir=tmp / "status", archive_timeout=7)


def _settings(text: str) -> dict[str, str]:
    return dict(line.split(" = ", 1) for line in text.splitlines()
                if line and not line.startswith("#"))


def _layout(tmp: Path, store: ObjectStore) -> tuple[BucketWal, Path]:
    (tmp / "status").mkdir()
    (tmp / "creds").write_text("".join(f"{k}={v}\n" for k, v in store.env.items()))
    os.chmod(tmp / "creds", 0o600)
    archive = tmp / "timelines" / "tl-a" / "wal"
    archive.mkdir(parents=True)
    return _bw(tmp, store.url), archive


def _segment(tmp: Path, data: bytes) -> Path:
    p = tmp / "pg_wal" / SEG
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(data)
    return p


# -- the settings Postgres gets -------------------------------------------------------------

def test_with_a_bucket_postgres_runs_the_kit_and_no_secret_is_in_its_config(tmp_path: Path) -> None:
    bw = _bw(tmp_path)
    at = RecoveryTarget(TargetKind.TIME, time=datetime(2026, 1, 1, tzinfo=UTC))
    conf = StorageConf(Path("/s/tl-b/wal"), (Path("/s/tl-b/wal"), Path("/s/tl-a/wal")),
                       at, bucket=bw)
    s = _settings(render_storage_conf(conf))
    assert s["archive_library"] == "''"
    assert s["archive_timeout"] == "7"
    assert "wal_archive.py push" in s["archive_command"]
    assert "--archive-dir /s/tl-b/wal" in s["archive_command"]
    assert s["archive_command"].endswith("%p %f'")
    assert "-I -S" in s["archive_command"]          # no PYTHONPATH from the environment
    # local archives first, child before parent, then the bucket for the same timelines
    assert s["restore_command"].index("/s/tl-b/wal") < s["restore_command"].index("/s/tl-a/wal")
    assert "exec " in s["restore_command"] and "fetch" in s["restore_command"]
    assert "SECRET" not in render_storage_conf(conf)
    assert str(bw.credentials) in s["archive_command"]


def test_only_a_recovery_that_reads_history_asks_the_bucket(tmp_path: Path) -> None:
    """A branch from the head has its WAL copied in by Argon: no interpreter per miss."""
    dirs = (Path("/s/tl-b/wal"), Path("/s/tl-a/wal"))
    for target in (None, RecoveryTarget()):
        s = _settings(render_storage_conf(StorageConf(dirs[0], dirs, target, _bw(tmp_path))))
        assert "fetch" not in s["restore_command"] and "push" in s["archive_command"]
    lsn = RecoveryTarget(TargetKind.LSN, lsn=Lsn.parse("0/3000000"))
    s = _settings(render_storage_conf(StorageConf(dirs[0], dirs, lsn, _bw(tmp_path))))
    assert "fetch" in s["restore_command"]


def test_a_percent_in_a_path_is_doubled_for_postgres(tmp_path: Path) -> None:
    bw = _bw(tmp_path / "100%")
    cmd = bucket_archive_command(bw, Path("/a%b/wal"))
    assert "/a%%b/wal" in cmd and "100%%" in cmd
    assert bucket_restore_command(bw, (Path("/x%y/wal"),)).count("/x%%y/wal") == 2


def test_the_restore_command_really_copies_a_local_file_without_the_bucket(tmp_path: Path) -> None:
    archive = tmp_path / "tl" / "wal"
    archive.mkdir(parents=True)
    (archive / SEG).write_bytes(b"local")
    bw = _bw(tmp_path, "s3://nowhere/x")   # never reached: the local copy wins
    cmd = bucket_restore_command(bw, (archive,)).replace("%f", SEG).replace("%p", "out")
    subprocess.run(["/bin/sh", "-c", cmd], cwd=tmp_path, check=True)
    assert (tmp_path / "out").read_bytes() == b"local"


# -- push / fetch against the S3 stand-in ---------------------------------------------------

def test_push_puts_the_segment_in_the_archive_and_the_bucket(object_store: ObjectStore,
                                                              tmp_path: Path) -> None:
    bw, archive = _layout(tmp_path, object_store)
    data = os.urandom(1 << 20)
    seg = _segment(tmp_path, data)
    assert push(bw.url, bw.credentials, archive, bw.status_dir, seg, SEG) == 0
    assert (archive / SEG).read_bytes() == data
    assert object_store.bucket().get_bytes(wal_key("tl-a", SEG)) == data
    status = json.loads((bw.status_dir / "tl-a.json").read_text())
    assert status["last_success_wal"] == SEG and status["consecutive_failures"] == 0
    # Postgres re-archives after a crash: identical bytes already there are a success
    assert push(bw.url, bw.credentials, archive, bw.status_dir, seg, SEG) == 0


def test_push_refuses_other_content_under_the_same_name(object_store: ObjectStore,
                                                        tmp_path: Path) -> None:
    bw, archive = _layout(tmp_path, object_store)
    object_store.bucket().put_bytes(wal_key("tl-a", SEG), b"someone else's WAL")
    seg = _segment(tmp_path, b"ours")
    assert push(bw.url, bw.credentials, archive, bw.status_dir, seg, SEG) == 1
    assert object_store.bucket().get_bytes(wal_key("tl-a", SEG)) == b"someone else's WAL"
    status = json.loads((bw.status_dir / "tl-a.json").read_text())
    assert "already holds other content" in status["last_error"]


def test_push_fails_while_the_bucket_is_down_and_succeeds_after(object_store: ObjectStore,
                                                               tmp_path: Path) -> None:
    bw, archive = _layout(tmp_path, object_store)
    seg = _segment(tmp_path, b"x" * 1000)
    object_store.stop()
    assert push(bw.url, bw.credentials, archive, bw.status_dir, seg, SEG) == 1
    state = read_state(archive.parent, bw.status_dir)
    assert state.failing and state.consecutive_failures == 1
    assert "did not answer" in (state.last_error or "")
    object_store.start()
    assert push(bw.url, bw.credentials, archive, bw.status_dir, seg, SEG) == 0
    state = read_state(archive.parent, bw.status_dir)
    assert not state.failing and state.failures_total == 1


def test_fetch_takes_the_nearest_timeline_that_has_the_file(object_store: ObjectStore,
                                                           tmp_path: Path) -> None:
    bw, archive = _layout(tmp_path, object_store)
    child = tmp_path / "timelines" / "tl-b" / "wal"
    bucket = object_store.bucket()
    bucket.put_bytes(wal_key("tl-a", SEG), b"parent's")
    dest = tmp_path / "RECOVERYXLOG"
    assert fetch(bw.url, bw.credentials, SEG, dest, [child, archive]) == 0
    assert dest.read_bytes() == b"parent's"
    assert (archive / SEG).read_bytes() == b"parent's"   # the local cache is filled again
    (archive / SEG).unlink()
    bucket.put_bytes(wal_key("tl-b", SEG), b"child's")
    assert fetch(bw.url, bw.credentials, SEG, dest, [child, archive]) == 0
    assert dest.read_bytes() == b"child's"
    assert fetch(bw.url, bw.credentials, "00000009.history", dest, [child, archive]) == 1
    object_store.stop()
    assert fetch(bw.url, bw.credentials, SEG, tmp_path / "other", [child]) == 1
    assert not (tmp_path / "other").exists()


def test_the_kit_runs_push_as_postgres_would(object_store: ObjectStore, tmp_path: Path) -> None:
    bw, archive = _layout(tmp_path, object_store)
    kit = build_kit(tmp_path, _me())
    bw = BucketWal(bw.url, Path(sys.executable), kit, bw.credentials, bw.status_dir)
    seg = _segment(tmp_path, b"y" * 4096)
    cmd = bucket_archive_command(bw, archive).replace("%p", f"pg_wal/{SEG}").replace("%f", SEG)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": "/nonexistent"}   # -I ignores it
    run = subprocess.run(["/bin/sh", "-c", cmd], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    assert object_store.bucket().get_bytes(wal_key("tl-a", SEG)) == seg.read_bytes()
    assert build_kit(tmp_path, _me()) == kit   # made once per content


def test_credentials_file_format(tmp_path: Path) -> None:
    p = tmp_path / "c"
    p.write_text("# comment\nAWS_ACCESS_KEY_ID=AK\nAWS_SECRET_ACCESS_KEY=a=b\n\n")
    assert read_credentials(p) == {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "a=b"}


# -- lag and the log ------------------------------------------------------------------------

def test_pending_segments_and_lag_come_from_postgres_ready_files(tmp_path: Path) -> None:
    tdir = tmp_path / "tl-a"
    status = tdir / "pgdata" / "pg_wal" / "archive_status"
    status.mkdir(parents=True)
    for name in (SEG, "000000010000000000000004"):
        (tdir / "pgdata" / "pg_wal" / name).write_bytes(b"\0" * 1000)
        (status / f"{name}.ready").touch()
    (status / "000000010000000000000002.done").touch()
    old = time.time() - 30
    os.utime(status / f"{SEG}.ready", (old, old))
    state = read_state(tdir, tmp_path)
    assert state.pending_segments == 2 and state.pending_bytes == 2000
    assert 29 <= state.oldest_pending_age <= 60
    assert not state.failing and state.last_success_time is None


def test_watch_logs_failing_then_working_again(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                               ) -> None:
    (tmp_path / "root" / "tl-a" / "pgdata").mkdir(parents=True)
    status = tmp_path / "status"
    status.mkdir()
    watch = ArchiveWatch(tmp_path / "root", status, "s3://b/p")
    (status / "tl-a.json").write_text(json.dumps({"consecutive_failures": 2,
                                                  "last_error": "could not upload"}))
    with caplog.at_level("INFO"):
        watch.check(now=0)
        watch.check(now=1)   # not again within a minute
        (status / "tl-a.json").write_text(json.dumps({"consecutive_failures": 0}))
        watch.check(now=2)
    lines = [r.getMessage() for r in caplog.records]
    assert sum("is failing" in m for m in lines) == 1
    assert "could not upload" in lines[0]
    assert any("works again" in m for m in lines)


def test_bad_object_store_addresses_are_refused_precisely() -> None:
    from argon.storage.objectstore.bucket import Bucket

    for url in ("http://bucket/x", "s3://", "s3://key:secret@bucket/x", "s3://b/x?y=1"):
        with pytest.raises(ObjectStoreError) as err:
            Bucket(url, {})
        assert err.value.kind == "config" and "s3://bucket/prefix" in err.value.message


def test_backfill_uploads_what_only_the_local_archive_holds(object_store: ObjectStore,
                                                           tmp_path: Path) -> None:
    from argon.storage.objectstore.backfill import backfill

    archive = tmp_path / "tl-a" / "wal"
    archive.mkdir(parents=True)
    names = [SEG, "000000010000000000000004", "00000002.history",
             "000000010000000000000005.partial"]
    for n in names:
        (archive / n).write_bytes(n.encode())
    (archive / ".000000010000000000000006.123.tmp").write_bytes(b"half-written")
    bucket = object_store.bucket()
    bucket.put_bytes(wal_key("tl-a", SEG), SEG.encode())           # already there
    bucket.put_bytes(wal_key("tl-a", names[1]), b"other bytes")    # present: never replaced
    assert backfill(tmp_path, bucket) == 2
    held = {o.key.rsplit("/", 1)[1] for o in bucket.list("timelines/tl-a/wal/")}
    assert held == set(names)
    assert bucket.get_bytes(wal_key("tl-a", names[1])) == b"other bytes"
    assert backfill(tmp_path, bucket) == 0
