"""WAL archiving to an S3-compatible bucket through the platform (moto stands in for S3).

Argon runs with ``--object-store``; the compute's archive command puts each finished WAL
file into the bucket (and the local archive) by itself, so commits keep reaching the
bucket while Argon is dead; an outage of the bucket delays archiving without losing WAL
or stopping clients and shows in ``/metrics`` and the log; a branch at a past point
replays WAL fetched from the bucket when the local copies are gone.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from argon.pg import choose_install
from argon.storage.wal import is_segment_name
from tests.fixtures.argon_env import ArgonEnv, kill_leftover_postgres, make_env, running_env
from tests.fixtures.object_store import ObjectStore
from tests.integration.core.helpers import connect, new_project

ARCHIVE_TIMEOUT = 3   # seconds: keeps the tests short; the default is 60


@pytest.fixture
def archive_timeout() -> int:
    return ARCHIVE_TIMEOUT


@pytest.fixture
def bucket_argon(object_store: ObjectStore, monkeypatch: pytest.MonkeyPatch,
                 request: pytest.FixtureRequest, archive_timeout: int) -> Iterator[ArgonEnv]:
    """Argon started with --object-store on a fresh bucket (AWS_* in its environment)."""
    for k, v in object_store.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("ARGON_WAL_ARCHIVE_TIMEOUT", str(archive_timeout))
    with running_env(request.node.name[:24], ["--object-store", object_store.url]) as env:
        yield env


def timeline_of(env: ArgonEnv, branch_id: str) -> str:
    with sqlite3.connect(env.home / "argon.db") as db:
        row = db.execute("SELECT timeline_id FROM branches WHERE id = ?", [branch_id]).fetchone()
    assert row is not None
    return str(row[0])


def wait_for(what: str, check: Callable[[], Any], timeout: float = 90,
             between: Callable[[], None] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if between is not None:
            between()
        time.sleep(0.3)


def bucket_wal(store: ObjectStore, timeline_id: str) -> dict[str, int]:
    prefix = f"timelines/{timeline_id}/wal/"
    return {o.key.removeprefix(prefix): o.size for o in store.bucket().list(prefix)}


def metric(env: ArgonEnv, name: str, timeline_id: str) -> float | None:
    import httpx

    text = httpx.get(f"http://127.0.0.1:{env.api_port}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith(f'{name}{{timeline_id="{timeline_id}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def postmaster_pid(env: ArgonEnv, timeline_id: str) -> int:
    pidfile = env.home / "timelines" / timeline_id / "pgdata" / "postmaster.pid"
    return int(pidfile.read_text().split()[0])


def commits_in(segments: list[Path], waldump: Path) -> set[int]:
    """Transaction ids with a COMMIT record in these WAL files (pg_waldump's view)."""
    xids: set[int] = set()
    for seg in segments:
        out = subprocess.run([str(waldump), "--rmgr=Transaction", str(seg)],
                             capture_output=True, text=True)
        for line in out.stdout.splitlines():
            if "COMMIT" in line and "tx:" in line:
                xids.add(int(line.split("tx:")[1].split(",")[0]))
    return xids


@pytest.mark.parametrize("pg_version", [18, 15])
def test_every_acknowledged_commit_is_in_the_bucket_after_kill9_of_argon_and_compute(
        bucket_argon: ArgonEnv, object_store: ObjectStore, tmp_path: Path,
        pg_version: int) -> None:
    env = bucket_argon
    assert f"WAL archive  {object_store.url} at {object_store.server.endpoint}" in env.output()
    created = new_project(env, "durable", pg_version=pg_version)
    pid, main = created["project"]["id"], created["branch"]["id"]
    tl = timeline_of(env, main)
    acked: list[int] = []
    with connect(env, pid, main) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, xid text)")
        for i in range(200):
            row = conn.execute("INSERT INTO t VALUES (%s, pg_current_xact_id()::text) "
                               "RETURNING xid", [i]).fetchone()
            assert row is not None
            acked.append(int(row[0]))   # the commit returned: acknowledged
        last = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()
        assert last is not None
    compute = postmaster_pid(env, tl)

    env.kill9()   # Argon gone: the compute's own archiver must bring the WAL to the bucket
    held = wait_for(f"segment {last[0]} in the bucket",
                    lambda: last[0] in bucket_wal(object_store, tl) and bucket_wal(object_store, tl))
    os.kill(compute, signal.SIGKILL)

    # Every WAL file in the bucket is byte for byte what Postgres archived locally.
    local = env.home / "timelines" / tl / "wal"
    bucket = object_store.bucket()
    segments = []
    for name in sorted(held):
        data = bucket.get_bytes(f"timelines/{tl}/wal/{name}")
        assert hashlib.sha256(data).digest() == hashlib.sha256((local / name).read_bytes()).digest()
        if is_segment_name(name):
            (tmp_path / name).write_bytes(data)
            segments.append(tmp_path / name)
    # And every acknowledged transaction's COMMIT record is in it.
    missing = set(acked) - commits_in(segments, choose_install(pg_version).bin("pg_waldump"))
    assert not missing, f"{len(missing)} acknowledged commits not in the bucket's WAL"
    # The credentials are in the Postgres account's 0600 file only: not in any
    # configuration, log or data file of the home.
    secret = object_store.env["AWS_SECRET_ACCESS_KEY"].encode()
    holders = [p.relative_to(env.home) for p in env.home.rglob("*")
               if p.is_file() and not p.is_symlink() and secret in p.read_bytes()]
    assert holders == [Path("objectstore/credentials")]
    assert (env.home / "objectstore/credentials").stat().st_mode & 0o777 == 0o600


# archive_timeout off: only the clean stop finishes the segment (Postgres switches WAL at a
# shutdown when archiving is on, and its archiver's last cycle uploads it)
@pytest.mark.parametrize("archive_timeout", [0])
def test_a_suspended_compute_leaves_no_commit_only_on_the_host_disk(
        bucket_argon: ArgonEnv, object_store: ObjectStore) -> None:
    env = bucket_argon
    created = new_project(env, "suspend")
    pid, main = created["project"]["id"], created["branch"]["id"]
    ep = created["endpoints"][0]["id"]
    tl = timeline_of(env, main)
    with connect(env, pid, main) as conn:
        conn.execute("CREATE TABLE t (id int)")
        conn.execute("INSERT INTO t VALUES (1)")
        seg = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()
        assert seg is not None
    assert seg[0] not in bucket_wal(object_store, tl)   # a partly filled segment
    r = env.api("POST", f"/projects/{pid}/endpoints/{ep}/suspend")
    assert r.status_code == 200, r.text
    wait_for("the suspended compute's last segment in the bucket",
             lambda: seg[0] in bucket_wal(object_store, tl), timeout=15)


def test_bucket_outage_delays_archiving_without_losing_wal_or_clients(
        bucket_argon: ArgonEnv, object_store: ObjectStore) -> None:
    env = bucket_argon
    created = new_project(env, "outage")
    pid, main = created["project"]["id"], created["branch"]["id"]
    tl = timeline_of(env, main)
    with connect(env, pid, main) as conn:
        conn.execute("CREATE TABLE t (id serial PRIMARY KEY, pad text)")
        conn.execute("INSERT INTO t (pad) SELECT repeat('x', 100) FROM generate_series(1, 1000)")
        wait_for("the first WAL in the bucket", lambda: bucket_wal(object_store, tl))
        before = set(bucket_wal(object_store, tl))

        object_store.stop()
        written = 0

        def write() -> None:
            nonlocal written
            # ~2 MB per call: a segment fills every few calls; clients must not notice
            conn.execute("INSERT INTO t (pad) SELECT repeat(md5(random()::text), 64) "
                         "FROM generate_series(1, 1000)")
            written += 1000

        wait_for("archive failures in /metrics",
                 lambda: (metric(env, "argon_wal_archive_consecutive_failures", tl) or 0) > 0
                 and (metric(env, "argon_wal_archive_pending_segments", tl) or 0) >= 2,
                 between=write)
        assert (metric(env, "argon_wal_archive_lag_bytes", tl) or 0) > 0
        wait_for("the outage in Argon's log",
                 lambda: f"WAL archiving of timeline {tl}" in env.output()
                 and "is failing" in env.output(), timeout=30)
        pending = sorted(p.name.removesuffix(".ready") for p in
                         (env.home / "timelines" / tl / "pgdata" / "pg_wal" / "archive_status")
                         .glob("*.ready"))
        assert pending and all(n not in before for n in pending)
        wal = env.home / "timelines" / tl / "pgdata" / "pg_wal"
        assert all((wal / n).is_file() for n in pending), "WAL waiting for the bucket was removed"

        object_store.start()
        wait_for("the backlog to drain",
                 lambda: metric(env, "argon_wal_archive_pending_segments", tl) == 0
                 and set(pending) <= set(bucket_wal(object_store, tl)),
                 between=lambda: conn.execute("INSERT INTO t (pad) VALUES ('tick')"))
        assert metric(env, "argon_wal_archive_consecutive_failures", tl) == 0
        count = conn.execute("SELECT count(*) FROM t WHERE pad <> 'tick'").fetchone()
        assert count == (1000 + written,)
    wait_for("the recovery in Argon's log", lambda: "works again" in env.output(), timeout=30)


def test_branch_at_a_past_time_replays_wal_from_the_bucket_when_local_copies_are_gone(
        bucket_argon: ArgonEnv, object_store: ObjectStore) -> None:
    env = bucket_argon
    created = new_project(env, "pitr", history_retention_seconds=3600)
    pid, main = created["project"]["id"], created["branch"]["id"]
    tl = timeline_of(env, main)
    with connect(env, pid, main) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, pad text)")
        conn.execute("INSERT INTO t SELECT g, repeat('a', 200) FROM generate_series(1, 50000) g")
        time.sleep(1.1)
        point = conn.execute("SELECT clock_timestamp()").fetchone()
        assert point is not None
        time.sleep(1.1)
        conn.execute("INSERT INTO t SELECT g, 'late' FROM generate_series(50001, 50100) g")
        seg = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()
        assert seg is not None
    wait_for("the WAL after the point in the bucket",
             lambda: seg[0] in bucket_wal(object_store, tl))
    local = env.home / "timelines" / tl / "wal"
    removed = [p for p in local.iterdir() if is_segment_name(p.name)]
    assert len(removed) >= 2
    for p in removed:
        p.unlink()

    at = point[0].astimezone(UTC).isoformat().replace("+00:00", "Z")
    r = env.api("POST", f"/projects/{pid}/branches", json={
        "branch": {"name": "past", "parent_id": main, "parent_timestamp": at},
        "endpoints": [{"type": "read_write"}]})
    assert r.status_code == 201, r.text
    past = r.json()["branch"]["id"]
    with connect(env, pid, past) as conn:
        assert conn.execute("SELECT count(*), max(id) FROM t").fetchone() == (50000, 50000)
    # Postgres restored segments whose only copy left was the bucket's.
    logs = "".join(p.read_text(errors="replace") for p in (env.home / "logs").glob("ep-*.log"))
    restored = {p.name for p in removed if f'restored log file "{p.name}" from archive' in logs}
    assert restored, "no removed segment was restored from the bucket"
    # ... and put them back into the local archive, the cache the next branch reads first
    assert all((local / name).is_file() for name in restored)


def test_turning_the_bucket_on_copies_the_wal_only_the_local_archive_held(
        object_store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in object_store.env.items():
        monkeypatch.setenv(k, v)
    env = make_env("bucket-later")
    env.start()
    try:
        created = new_project(env, "older")
        pid, main = created["project"]["id"], created["branch"]["id"]
        tl = timeline_of(env, main)
        with connect(env, pid, main) as conn:
            conn.execute("CREATE TABLE t AS SELECT generate_series(1, 100000) AS id")
        env.stop()   # the clean stops archive the last segments, locally only
        local = sorted(p.name for p in (env.home / "timelines" / tl / "wal").iterdir()
                       if is_segment_name(p.name))
        assert len(local) >= 2 and not bucket_wal(object_store, tl)
        env.extra_args = ["--object-store", object_store.url]
        env.start()
        wait_for("the local-only WAL in the bucket",
                 lambda: set(local) <= set(bucket_wal(object_store, tl)), timeout=60)
        assert "copied" in env.output() and "only the local archives held" in env.output()
    finally:
        env.stop()
        kill_leftover_postgres(env.home)


def test_start_refuses_an_unreachable_bucket_with_what_to_check(
        object_store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in object_store.env.items():
        monkeypatch.setenv(k, v)
    object_store.stop()
    env = make_env("bucket-down", ["--object-store", object_store.url])
    with pytest.raises(RuntimeError) as failed:
        env.start(timeout=60)
    out = failed.value.args[0]
    assert object_store.url in out and "did not answer" in out and "AWS_ENDPOINT_URL" in out
    assert object_store.env["AWS_SECRET_ACCESS_KEY"] not in out
    object_store.start()
    bad = make_env("bucket-missing", ["--object-store", "s3://no-such-bucket-here/x"])
    with pytest.raises(RuntimeError) as failed:
        bad.start(timeout=60)
    assert "does not exist" in failed.value.args[0]
