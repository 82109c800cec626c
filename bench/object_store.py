"""Issue 11 figures: WAL in an S3-compatible bucket (moto's server stands in for S3).

- per-segment cost of the archive command (``wal_archive.py push`` from the WAL kit, run
  by /bin/sh as the Postgres account, as Postgres runs it) on 16 MiB segments, next to
  its floor (the interpreter starting and importing the kit);
- archive throughput under a pgbench tpcb-like write load through the proxy: WAL written
  and WAL that reached the bucket (MB/s), the archive lag (``argon_wal_archive_lag_bytes``
  and ``_seconds`` in /metrics, sampled every second) and the time to drain after it;
- the recovery point: a single commit on an otherwise idle compute, then the time until
  its WAL segment is in the bucket (archive_timeout bounds it);
- ``recovery_of_a_project_from_the_bucket``: the hook for ``argon recover`` of a 1 GB
  project; ``bench/object_store_recover.py`` measures it in section
  *object-store-recover*, and this table points there.

moto keeps objects in this process' memory and runs in its threads on the same 2 cores,
so the bucket side is slower than S3 or MinIO would be: the figures are a floor for
Argon's own overhead plus a slow bucket, not S3's throughput.

    .venv/bin/python bench/object_store.py [--seconds 60] [--pushes 10] [--rpo-runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from argon.pg import choose_install, pg_os_user  # noqa: E402
from argon.storage.objectstore.kit import prepare_bucket_wal  # noqa: E402
from argon.storage.objectstore.wal_commands import ARCHIVE_ENTRY, bucket_archive_command  # noqa: E402
from bench.report import p50, p95, table, write_section  # noqa: E402
from tests.fixtures.argon_env import ArgonEnv, kill_leftover_postgres, make_env  # noqa: E402
from tests.fixtures.common import TEST_ROOT  # noqa: E402
from tests.fixtures.object_store import ObjectStore, ObjectStoreServer  # noqa: E402

SEGMENT = 16 * 1024 * 1024


def new_store(server: ObjectStoreServer, name: str) -> ObjectStore:
    server.create_bucket(name)
    return ObjectStore(server, name)


# -- per-segment cost -----------------------------------------------------------------------

def push_cost(store: ObjectStore, pushes: int) -> dict[str, list[float]]:
    owner = pg_os_user()
    home = TEST_ROOT / f"bench-push-{os.getpid()}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True, mode=0o711)
    os.chmod(home, 0o711)
    try:
        bw = prepare_bucket_wal(home, store.url, owner, store.env)
        tl = home / "timelines" / "bench-tl"
        (tl / "wal").mkdir(parents=True)
        for d in (home / "timelines", tl):
            os.chmod(d, 0o711)
        owner.chown(tl / "wal")
        src = tl / "pg_wal"
        src.mkdir()
        owner.chown(src)
        floor, full = [], []
        for i in range(pushes):
            name = f"0000000100000000{i + 1:08X}"
            seg = src / name
            seg.write_bytes(os.urandom(SEGMENT))
            owner.chown(seg)
            cmd = bucket_archive_command(bw, tl / "wal").replace("%p", str(seg)).replace("%f", name)
            t0 = time.perf_counter()
            subprocess.run(["/bin/sh", "-c", cmd], check=True, capture_output=True,
                           **owner.popen_kwargs())  # type: ignore[call-overload]
            full.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run([str(bw.python), "-I", "-S", "-c",
                            f"import sys; sys.path.insert(0, {str(bw.kit)!r}); "
                            "import argon.storage.objectstore.wal_archive, "
                            "argon.storage.objectstore.bucket"],
                           check=True, capture_output=True, **owner.popen_kwargs())  # type: ignore[call-overload]
            floor.append(time.perf_counter() - t0)
        assert (bw.kit / ARCHIVE_ENTRY).is_file()
        return {"push": full, "floor": floor}
    finally:
        shutil.rmtree(home, ignore_errors=True)


# -- throughput and lag under load ------------------------------------------------------------

def timeline_of(env: ArgonEnv, branch_id: str) -> str:
    with sqlite3.connect(env.home / "argon.db") as db:
        return str(db.execute("SELECT timeline_id FROM branches WHERE id = ?",
                              [branch_id]).fetchone()[0])


def scrape(env: ArgonEnv, tl: str) -> dict[str, float]:
    out: dict[str, float] = {}
    text = httpx.get(f"http://127.0.0.1:{env.api_port}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith("argon_wal_archive_") and f'timeline_id="{tl}"' in line:
            out[line.split("{", 1)[0]] = float(line.rsplit(" ", 1)[1])
    return out


def bucket_bytes(store: ObjectStore, tl: str) -> int:
    return sum(o.size for o in store.bucket().list(f"timelines/{tl}/wal/"))


def under_load(env: ArgonEnv, store: ObjectStore, seconds: int) -> dict[str, object]:
    created = env.api("POST", "/projects", json={"project": {
        "name": "bench", "default_endpoint_settings": {"suspend_timeout_seconds": -1}}}).json()
    main = created["branch"]["id"]
    uri = created["connection_uris"][0]["connection_uri"]
    plain = uri.partition("?")[0] + "?sslmode=disable"
    tl = timeline_of(env, main)
    pgbench = choose_install().bin("pgbench")
    subprocess.run([pgbench, "-i", "-s", "10", "-q", plain], check=True, capture_output=True)
    with psycopg.connect(uri, autocommit=True) as conn:
        lsn0 = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        while scrape(env, tl).get("argon_wal_archive_pending_segments", 1) > 0:
            time.sleep(0.5)     # start from an empty backlog
        b0 = bucket_bytes(store, tl)
        samples: list[dict[str, float]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(1.0):
                samples.append(scrape(env, tl))

        sampler = threading.Thread(target=sample, daemon=True)
        t0 = time.perf_counter()
        sampler.start()
        bench = subprocess.run([pgbench, "-c", "2", "-j", "2", "-T", str(seconds), "-n", plain],
                               capture_output=True, text=True)
        t_load = time.perf_counter() - t0
        written = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)",
                               [lsn0]).fetchone()[0]
        while scrape(env, tl).get("argon_wal_archive_pending_segments", 0) > 0:
            time.sleep(0.5)
        t_drain = time.perf_counter() - t0
        stop.set()
        sampler.join()
    tps = next((float(ln.split("=")[1].split()[0]) for ln in bench.stdout.splitlines()
                if ln.startswith("tps =")), float("nan"))
    archived = bucket_bytes(store, tl) - b0
    lag_b = [s.get("argon_wal_archive_lag_bytes", 0.0) for s in samples]
    lag_s = [s.get("argon_wal_archive_lag_seconds", 0.0) for s in samples]
    return {"tps": tps, "written_mb_s": float(written) / t_load / 1e6,
            "archived_mb_s": archived / t_drain / 1e6, "archived_mb": archived / 1e6,
            "drain_after": t_drain - t_load, "lag_bytes": lag_b, "lag_secs": lag_s,
            "seconds": t_load}


def recovery_point(env: ArgonEnv, store: ObjectStore, runs: int) -> list[float]:
    """Commit one row on an idle compute; seconds until its segment is in the bucket."""
    created = env.api("POST", "/projects", json={"project": {
        "name": "rpo", "default_endpoint_settings": {"suspend_timeout_seconds": -1}}}).json()
    uri = created["connection_uris"][0]["connection_uri"]
    tl = timeline_of(env, created["branch"]["id"])
    out = []
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE TABLE r (t timestamptz)")
        for _ in range(runs):
            time.sleep(2)
            conn.execute("INSERT INTO r VALUES (now())")
            seg = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()[0]
            t0 = time.perf_counter()
            prefix = f"timelines/{tl}/wal/{seg}"
            while not store.bucket().exists(prefix):
                time.sleep(0.2)
            out.append(time.perf_counter() - t0)
    return out


def recovery_of_a_project_from_the_bucket(server: ObjectStoreServer,
                                          args: argparse.Namespace) -> list[list[str]] | None:
    """Hook for the snapshots/recover side: rows ``[what, figure]`` for ``argon recover``
    of a 1 GB project from the bucket into an empty home, or None when not measured here
    (``bench/object_store_recover.py`` measures it in its own section today)."""
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--pushes", type=int, default=10)
    ap.add_argument("--rpo-runs", type=int, default=3)
    ap.add_argument("--archive-timeout", type=int, default=60)
    args = ap.parse_args()
    server = ObjectStoreServer()
    server.start()
    try:
        print("per-segment push cost", flush=True)
        cost = push_cost(new_store(server, "bench-push"), args.pushes)
        store = new_store(server, "bench-load")
        os.environ.update(store.env)
        os.environ["ARGON_WAL_ARCHIVE_TIMEOUT"] = str(args.archive_timeout)
        env = make_env("bench-objstore", ["--object-store", store.url])
        env.start(timeout=300)
        try:
            print(f"pgbench write load for {args.seconds} s", flush=True)
            load = under_load(env, store, args.seconds)
            print(f"recovery point at archive_timeout {args.archive_timeout} s", flush=True)
            rpo = recovery_point(env, store, args.rpo_runs)
        finally:
            env.stop()
            kill_leftover_postgres(env.home)
            shutil.rmtree(env.home, ignore_errors=True)
        recovery = recovery_of_a_project_from_the_bucket(server, args)
    finally:
        server.stop()

    lag_b, lag_s = load["lag_bytes"], load["lag_secs"]
    assert isinstance(lag_b, list) and isinstance(lag_s, list)
    rows = [
        ["archive command per 16 MiB segment (local archive + bucket PUT)",
         f"p50 {p50(cost['push']):.3f} s, p95 {p95(cost['push']):.3f} s"],
        ["  of which interpreter start + imports (the floor)",
         f"p50 {p50(cost['floor']):.3f} s"],
        [f"pgbench tpcb-like, 2 clients, {load['seconds']:.0f} s (scale 10)", f"{load['tps']:.0f} TPS"],
        ["WAL written under that load", f"{load['written_mb_s']:.1f} MB/s"],
        ["WAL archived to the bucket (load + drain)",
         f"{load['archived_mb_s']:.1f} MB/s ({load['archived_mb']:.0f} MB)"],
        ["archive lag during the load (bytes not in the bucket)",
         f"p50 {p50(lag_b) / 2**20:.0f} MiB, max {max(lag_b or [0]) / 2**20:.0f} MiB"],
        ["archive lag during the load (age of the oldest pending file)",
         f"p50 {p50(lag_s or [0]):.1f} s, max {max(lag_s or [0]):.1f} s"],
        ["backlog drained after the load stopped", f"{load['drain_after']:.1f} s"],
        [f"one idle commit -> its segment in the bucket (archive_timeout {args.archive_timeout} s)",
         f"p50 {p50(rpo):.1f} s, max {max(rpo):.1f} s ({len(rpo)} runs)"],
    ]
    rows += recovery or [["recovery of a 1 GB project from the bucket (argon recover)",
                          "section object-store-recover (bench/object_store_recover.py)"]]
    body = ("## WAL in object storage (issue 11)\n\n"
            "moto's S3 server (in the benchmark's process, same 2 cores) stands in for the "
            "bucket; S3, MinIO or R2 take the uploads off this machine's CPU.\n\n"
            + table(["what", "figure"], rows))
    write_section("object-store", "python bench/object_store.py " + " ".join(sys.argv[1:]), body)
    print(body)


if __name__ == "__main__":
    main()
