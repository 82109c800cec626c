"""Sync lag of ``argon import --sync``: source commit -> visible on the Argon branch.

A plain source Postgres (``wal_level = logical``, the same install Argon uses) holds
pgbench's tables (scale ``--scale``) and a ``probes`` table; ``POST /projects/{id}/import``
with ``sync`` copies the schema and subscribes a new branch to it. Once the initial copy
is done, a probe row is committed on the source every ``--interval`` s and the time until
a query on the branch (a kept connection through Argon's proxy, polled every 2 ms) sees it
is the lag. Measured idle and under a tpcb-like pgbench load (``--clients``) on the
source, then the cutover is timed.

    .venv/bin/python bench/import_sync.py [--probes 200] [--scale 5] [--clients 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from argon.pg import pg_os_user
from bench.report import p50, p95, table, write_section
from tests.fixtures.argon_env import ArgonEnv, kill_leftover_postgres, make_env, wait_operations
from tests.fixtures.common import TEST_ROOT
from tests.fixtures.pgserver import PgServer, make_pg_server


def source(root: Path, scale: int) -> tuple[PgServer, str]:
    d = root / "source"
    d.mkdir()
    os.chmod(d, 0o755)
    s = make_pg_server(d, pg_os_user())
    with (s.pgdata / "postgresql.conf").open("a") as f:
        f.write("wal_level = logical\n")
    s.start()
    s.create_role("bench", "bench-pw")
    with s.connect() as c:
        c.execute("ALTER ROLE bench SUPERUSER")
        c.execute("CREATE DATABASE app")
    dsn = s.tcp_dsn("bench", "bench-pw", "app")
    subprocess.run([s.install.bin("pgbench"), "-i", "-s", str(scale), "-q", dsn], check=True,
                   capture_output=True)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE TABLE probes (id int PRIMARY KEY, at timestamptz)")
    return s, dsn


def lags(src: psycopg.Connection, dst: psycopg.Connection, first: int, n: int,
         interval: float) -> list[float]:
    out = []
    for i in range(first, first + n):
        src.execute("INSERT INTO probes VALUES (%s, clock_timestamp())", (i,))  # autocommit
        committed = time.perf_counter()
        while dst.execute("SELECT 1 FROM probes WHERE id = %s", (i,)).fetchone() is None:
            if time.perf_counter() - committed > 60:
                raise RuntimeError(f"probe {i} not visible on the branch after 60 s")
            time.sleep(0.002)
        out.append(time.perf_counter() - committed)
        time.sleep(interval)
    return out


def owner_uri(env: ArgonEnv, pid: str, bid: str) -> str:
    dbs = env.api("GET", f"/projects/{pid}/branches/{bid}/databases").json()["databases"]
    owner = next(d["owner_name"] for d in dbs if d["name"] == "app")
    r = env.api("GET", f"/projects/{pid}/connection_uri",
                params={"branch_id": bid, "database_name": "app", "role_name": owner})
    assert r.status_code == 200, r.text
    return str(r.json()["uri"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--scale", type=int, default=5)
    ap.add_argument("--clients", type=int, default=2)
    args = ap.parse_args()
    TEST_ROOT.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench-sync-", dir=TEST_ROOT))
    os.chmod(root, 0o755)
    env = make_env("bench-sync")
    src_server = None
    load = None
    try:
        src_server, dsn = source(root, args.scale)
        env.start()
        r = env.api("POST", "/projects", json={"project": {"name": "bench-sync"}})
        assert r.status_code == 201, r.text
        pid = r.json()["project"]["id"]
        wait_operations(env.api, pid, r.json()["operations"])
        t0 = time.perf_counter()
        r = env.api("POST", f"/projects/{pid}/import", json={
            "source": {"connection_uri": dsn}, "branch": {"name": "synced"}, "sync": True})
        assert r.status_code == 201, r.text
        bid = r.json()["branch_id"]
        while env.api("GET", f"/projects/{pid}/branches/{bid}/import").json()[
                "state"] != "streaming":
            time.sleep(0.2)
        initial = time.perf_counter() - t0
        with psycopg.connect(dsn, autocommit=True) as src, \
                env.connect(owner_uri(env, pid, bid)) as dst:
            idle = lags(src, dst, 0, args.probes, args.interval)
            print(f"idle: p50 {p50(idle) * 1000:.1f} ms, p95 {p95(idle) * 1000:.1f} ms",
                  flush=True)
            load = subprocess.Popen(
                [src_server.install.bin("pgbench"), "-c", str(args.clients), "-j",
                 str(args.clients), "-T", "600", "-b", "tpcb-like", "-n", dsn],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(3)
            history = "SELECT count(*) FROM pgbench_history"
            before, t_busy = src.execute(history).fetchone(), time.perf_counter()
            busy = lags(src, dst, args.probes, args.probes, args.interval)
            after, t_busy = src.execute(history).fetchone(), time.perf_counter() - t_busy
            assert load.poll() is None, load.communicate()[0]   # the load ran throughout
            tps = (after[0] - before[0]) / t_busy if before and after else 0.0
            load.terminate()
            load.communicate(30)
            print(f"load ({tps:.0f} tps): p50 {p50(busy) * 1000:.1f} ms, "
                  f"p95 {p95(busy) * 1000:.1f} ms", flush=True)
        lag_bytes = env.api("GET", f"/projects/{pid}/branches/{bid}/import").json()["lag_bytes"]
        t1 = time.perf_counter()
        r = env.api("POST", f"/projects/{pid}/branches/{bid}/import/cutover", json={})
        cutover = time.perf_counter() - t1
        assert r.status_code == 200 and r.json()["mismatched"] == [], r.text
        body = ("## Import sync lag (`bench/import_sync.py`)\n\n"
                f"`argon import --sync` of a plain local Postgres (pgbench scale "
                f"{args.scale}, `wal_level = logical`) into a new branch. Lag: a probe row "
                f"committed on the source, until a query on the branch through Argon's "
                f"proxy sees it (polled every 2 ms); {args.probes} probes "
                f"{args.interval * 1000:.0f} ms apart, each phase.\n\n" + table(
                    ["source load", "lag p50", "lag p95"],
                    [["idle", f"{p50(idle) * 1000:.1f} ms", f"{p95(idle) * 1000:.1f} ms"],
                     [f"pgbench tpcb-like, {args.clients} clients, unthrottled "
                      f"({tps:.0f} tps meanwhile)",
                      f"{p50(busy) * 1000:.1f} ms", f"{p95(busy) * 1000:.1f} ms"]]) +
                f"\n\nSchema copy + subscription + initial copy of the rows until "
                f"`state = streaming`: {initial:.1f} s. After the load stopped: "
                f"`lag_bytes` {lag_bytes}; `cutover` (wait for the source's WAL position, "
                f"advance sequences, drop subscription, slot and publication, count rows "
                f"on both sides) {cutover:.1f} s. Source (`fsync = off`, the test fixture's) and "
                "Argon share the machine's cores; each figure includes the probe's own "
                "round trips (the commit's answer, the queries on the branch).\n")
        write_section("import-sync", "python bench/import_sync.py " + " ".join(sys.argv[1:]),
                      body)
        print(body)
    finally:
        if load is not None and load.poll() is None:
            load.kill()
        env.stop()
        kill_leftover_postgres(env.home)
        if src_server is not None:
            src_server.stop()
        shutil.rmtree(env.home, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
