"""Time travel: time to a usable branch at a past point vs WAL to replay, and the
storage one day of history costs under a steady pgbench write load.

Drives ``argon.storage`` directly with real Postgres (PostgreSQL 18, 1 MiB WAL
segments, as Argon's initdb makes them): a root timeline runs pgbench for a few
minutes while the bench records (time, LSN) and takes snapshots by WAL volume as the
reconciler does; then branches at points further and further from the newest snapshot
before them are started until they answer a query.  Runs on the copy driver, and on
reflink on a loop-mounted XFS when root and xfsprogs allow (skipped with the reason).

    .venv/bin/python bench/timetravel_bench.py [--seconds 90]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from argon.compute.backup import online_backup, switch_wal  # noqa: E402
from argon.compute.initdb import initdb  # noqa: E402
from argon.control.history import SNAPSHOT_BYTES  # noqa: E402
from argon.pg import Lsn, choose_install, pg_os_user  # noqa: E402
from argon.storage import Storage  # noqa: E402
from argon.storage.drivers import CopyDriver, ReflinkDriver  # noqa: E402
from argon.storage.pitr import PointInTime, choose_snapshot  # noqa: E402
from bench.report import table, write_section  # noqa: E402
from tests.fixtures.common import TEST_ROOT  # noqa: E402
from tests.fixtures.storage import start_timeline, wait_promoted  # noqa: E402
from tests.fixtures.xfs import XfsUnavailable, xfs_mount  # noqa: E402

MB = 1024 * 1024
RATE = 300  # pgbench transactions per second: a steady, not a saturating, load


def du(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.returncode == 0 else 0


def run_driver(root: Path, driver, seconds: int) -> dict:  # type: ignore[no-untyped-def]
    servers: list = []  # type: ignore[type-arg]
    try:
        return _run_driver(root, driver, seconds, servers)
    finally:
        for server in servers:
            try:
                server.stop()
            except Exception:  # noqa: BLE001 - already stopped
                pass


def _run_driver(root: Path, driver, seconds: int, servers: list) -> dict:  # type: ignore[no-untyped-def, type-arg]
    owner = pg_os_user()
    install = choose_install(18).accessible_for(owner.uid, TEST_ROOT / "pgbin")
    storage = Storage(root / "timelines", driver, owner)
    work = root / "work"
    work.mkdir(mode=0o755)
    owner.chown(work)
    storage.init_timeline("main", lambda p: initdb(install, p, owner))
    server = start_timeline(storage, "main", install, owner, work)
    servers.append(server)
    pgbench = [install.bin("pgbench"), "-h", str(server.socket_dir), "-p", str(server.port),
               "-U", "cloud_admin", "postgres"]
    subprocess.run([*pgbench[:-1], "-i", "-s", "5", "-q", "postgres"], check=True,
                   capture_output=True, **owner.popen_kwargs())  # type: ignore[call-overload]
    every = SNAPSHOT_BYTES[driver.name]
    samples: list[tuple[datetime, Lsn]] = []
    hist0 = storage.history_bytes("main")
    t_start, lsn_start = datetime.now(UTC), None
    phases = max(4, seconds // 10)
    for _ in range(phases):
        subprocess.run([*pgbench[:-1], "-T", str(seconds // phases), "-c", "2", "-n",
                        "-R", str(RATE), "postgres"], check=True, capture_output=True,
                       **owner.popen_kwargs())  # type: ignore[call-overload]
        with server.connect() as conn:
            row = conn.execute("SELECT now(), pg_current_wal_insert_lsn()::text").fetchone()
        lsn = Lsn.parse(row[1])
        lsn_start = lsn_start or lsn
        samples.append((row[0], lsn))
        storage.record_sample("main", row[0], lsn)
        snaps = storage.snapshots("main")
        if not snaps or int(lsn) - int(snaps[-1].lsn) >= every:
            storage.snapshot_running("main", lambda label: online_backup(server.connect, label))
    with server.connect() as conn:
        conn.autocommit = True
        live = storage.seal_wal("main", switch_wal(conn))
    elapsed = (datetime.now(UTC) - t_start).total_seconds()
    wal_bytes = int(live.head_lsn) - int(samples[0][1])
    hist_bytes = storage.history_bytes("main") - hist0
    results = []
    back = min(60, int((datetime.now(UTC) - samples[0][0]).total_seconds()) - 1)
    targets: list[tuple[str, object]] = [("lsn", s[1]) for s in samples]
    targets.append((f"time {back} s back", datetime.now(UTC) - timedelta(seconds=back)))
    for i, (what, target) in enumerate(targets):
        point = PointInTime(lsn=target) if isinstance(target, Lsn) else PointInTime(time=target)
        snap = choose_snapshot(storage.chain("main"), point)
        assert snap is not None
        t0 = time.perf_counter()
        storage.branch_timeline_at(f"b{i}", "main", point, live)
        child = start_timeline(storage, f"b{i}", install, owner, work)
        servers.append(child)
        wait_promoted(child)
        with child.connect() as conn:
            conn.execute("SELECT count(*) FROM pgbench_branches").fetchone()
        took = time.perf_counter() - t0
        storage.recovery_finished(f"b{i}")
        child.stop()
        replay = (int(point.lsn) if point.lsn is not None else int(live.head_lsn)) - int(snap.lsn)
        results.append((what, replay / MB, took))
        storage.delete_timeline(f"b{i}")
    server.stop()
    snaps = storage.snapshots("main")
    return {"driver": driver.name, "results": results, "elapsed": elapsed,
            "wal_mb": wal_bytes / MB, "hist_mb": hist_bytes / MB, "snapshots": len(snaps),
            "archive_mb": du(storage.archive_dir("main")) / MB,
            "snap_mb": du(storage.root / "main" / "snapshots") / MB}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=90, help="pgbench load duration")
    args = ap.parse_args()
    TEST_ROOT.mkdir(parents=True, exist_ok=True)
    runs, notes = [], []
    with ExitStack() as stack:
        base = Path(tempfile.mkdtemp(prefix="ttbench-", dir=TEST_ROOT))
        base.chmod(0o755)
        stack.callback(shutil.rmtree, base, True)
        runs.append(run_driver(base / "copy", CopyDriver(), args.seconds))
        try:
            with xfs_mount(TEST_ROOT, 4 * 1024 * MB) as mnt:
                runs.append(run_driver(mnt / "r", ReflinkDriver(), args.seconds))
        except XfsUnavailable as exc:
            notes.append(f"reflink not measured: {exc}")
        except Exception as exc:  # noqa: BLE001 - report the copy figures anyway
            notes.append(f"reflink run failed: {exc}")
    rows = []
    for run in runs:
        for what, mb, took in run["results"]:
            rows.append([run["driver"], what, f"{mb:.1f}", f"{took:.2f}",
                         f"{mb / max(took, 1e-3):.0f}"])
    body = ["## Time travel (`bench/timetravel_bench.py`)", "",
            "Time from asking for a branch at a past point to its first answered query "
            "(clone the newest snapshot before the point, replay archived WAL to the "
            "point, promote, start), against the WAL replayed (for the time target: up to "
            "the head, an upper bound). pgbench scale 5, 2 "
            f"clients at {RATE} tps, {args.seconds} s of load; snapshots every "
            f"{SNAPSHOT_BYTES['copy'] // MB} MB of WAL (copy) / "
            f"{SNAPSHOT_BYTES['reflink'] // MB} MB (reflink), as the reconciler takes them.",
            "", table(["driver", "target", "WAL replayed (MB)", "time to usable (s)",
                       "MB/s (incl. fixed cost)"], rows), ""]
    for run in runs:
        fixed = min(took for _w, _mb, took in run["results"])
        per_s = run["wal_mb"] / run["elapsed"]
        day_gb = per_s * 86400 / 1024
        body.append(
            f"- **{run['driver']}**: load wrote {run['wal_mb']:.0f} MB of WAL in "
            f"{run['elapsed']:.0f} s ({per_s:.1f} MB/s); history grew {run['hist_mb']:.0f} MB "
            f"(archive {run['archive_mb']:.0f} MB, {run['snapshots']} snapshots "
            f"{run['snap_mb']:.0f} MB apparent). **Extrapolated, not measured:** one day of "
            f"this load keeps ~{day_gb:.0f} GB of WAL plus a snapshot per "
            f"{SNAPSHOT_BYTES[run['driver']] // MB} MB of it. Fastest branch {fixed:.2f} s; "
            "a point 1 hour or 1 day back costs the fixed time plus replay of at most one "
            "snapshot interval of WAL (the size above, or 5 minutes of WAL if that is more: "
            "the reconciler snapshots a timeline at most every 5 minutes; this bench does "
            "not wait), since GC keeps the snapshot before every reachable point.")
    body += [""] + [f"- {n}" for n in notes]
    body.append("- Target: <= 2 s + replay; replay runs at Postgres' own recovery speed "
                "(it is Postgres' recovery).")
    write_section("timetravel", "python bench/timetravel_bench.py", "\n".join(body))
    print("\n".join(body))


if __name__ == "__main__":
    main()
